"""``stacrrn:match``: normalize overlapping rasters (:func:`stacrrn.match`)."""

from __future__ import annotations

from qgis.core import QgsProcessingContext, QgsProcessingOutputFile, QgsProcessingOutputMultipleLayers

from .base import Job, Made, StacrrnAlgorithm, StageProgress
from .options import (
    OUTPUT_FOLDER,
    add_cloud_masks,
    add_inputs,
    add_model,
    add_pif,
    add_workers_and_output,
    flag,
    read_cloud_masks,
    read_inputs,
    read_model,
    read_pif,
)
from .parameters import Parameters, is_set, layers, raster_sources

HELP = """Makes overlapping rasters agree radiometrically (Yu et al. 2017: a global gain and offset per image \
and band, then smooth local block fields), as <code>stacrrn match</code> does, and writes one corrected COG per \
input (same data type, nodata and grid), the model JSON and the block maps into the output folder.
<br><br><b>Reference images</b>: held fixed (a subset of the inputs); default: all images' central tendency.
<br><b>Mask rasters</b> restrict the statistics (never the output pixels); each is matched to the input its file \
name starts with. <b>PIFs</b>: pseudo-invariant pixels (IR-MAD, NDVI, include polygons) for the pairs' statistics.
<br>The corrected rasters are added to the project as "&lt;layer&gt; (normalized)"."""


class MatchAlgorithm(StacrrnAlgorithm):
    """Normalize local rasters and load the corrected ones."""

    NAME = "match"
    DISPLAY = "Normalize rasters (match)"
    GROUP = "Normalization"
    HELP = HELP
    STAGES = (("pif fit", 1.0), ("statistics", 4.0), ("overlaps", 1.0), ("apply", 4.0))

    def define(self) -> None:
        """Inputs, references, model, masks, PIFs, workers and the output folder."""
        from stacrrn.options import LOCAL_CLOUD_MASKS, ExecutionOptions, MaskOptions

        add_inputs(self)
        self.addParameter(layers("REFERENCES", "Reference images (among the inputs)", optional=True))
        add_model(self)
        add_cloud_masks(self, LOCAL_CLOUD_MASKS, MaskOptions.cloud_mask, local=True)
        add_pif(self)
        flag(self, "RESUME", "Keep outputs already made with the same model", ExecutionOptions.resume)
        add_workers_and_output(self)
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUT_LAYERS", "Normalized rasters"))
        self.addOutput(QgsProcessingOutputFile("MODEL", "Model JSON"))

    def prepare(self, parameters: Parameters, context: QgsProcessingContext) -> Job:
        """Layers to paths, options to :func:`stacrrn.match` keywords."""
        from stacrrn.pipeline.inputs.plan import band_numbers

        inputs = read_inputs(self, parameters, context)
        references = raster_sources(self, parameters, "REFERENCES", context) if is_set(parameters, "REFERENCES") else []
        kwargs = {
            "references": [path for path, _ in references] or None,
            "bands": band_numbers(inputs["bands"]),
            "pif": read_pif(self, parameters, context),
            "resume": self.parameterAsBool(parameters, "RESUME", context),
            "workers": self.parameterAsInt(parameters, "WORKERS", context),
            **read_model(self, parameters, context),
            **read_cloud_masks(self, parameters, context, inputs["paths"]),
        }
        out = self.parameterAsString(parameters, OUTPUT_FOLDER, context)
        return Job(out, {"paths": inputs["paths"], "names": inputs["names"], "kwargs": kwargs})

    def execute(self, job: Job, progress: StageProgress) -> Made:
        """:func:`stacrrn.match`, then one layer per corrected raster."""
        from stacrrn import match

        result = match(job.args["paths"], job.out, progress=progress, **job.args["kwargs"])
        paths = [r.path for r in result.outputs]
        made = Made({OUTPUT_FOLDER: job.out, "OUTPUT_LAYERS": paths, "MODEL": str(result.model_path)})
        for path, name in zip(paths, job.args["names"], strict=True):
            made.layers.append((path, f"{name} (normalized)", "OUTPUT_LAYERS", "raster"))
        for warning in result.warnings:
            progress.feedback.pushWarning(f"stacrrn: {warning}")
        return made
