"""``stacrrn:seamlines`` and ``stacrrn:mosaic``: seamlines and seamless mosaics of local rasters."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingOutputFile,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterFile,
)

from .base import Job, Made, StacrrnAlgorithm, StageProgress
from .options import (
    OUTPUT_FOLDER,
    add_grid,
    add_inputs,
    add_seams,
    add_workers_and_output,
    priority_of,
    read_grid,
    read_inputs,
    read_seams,
)
from .parameters import Parameters, is_set, number

SEAMLINES_HELP = """Seamlines of the inputs, as <code>stacrrn seamlines</code> writes them: every image is read \
once on a coarse seam grid for its valid-data footprint, and each part of the union goes to the image it lies \
deepest inside (preferred images weigh more); <i>least-cost</i> moves each seam onto the cheapest cut through the \
images' differences. Writes seamlines.geojson (WGS 84), seamlines.parquet and footprints.geojson."""

MOSAIC_HELP = """A seamless mosaic COG of the inputs, blended across the seamlines over the feather width, as \
<code>stacrrn mosaic</code> makes it, with its seamlines, footprints and STAC item. Give the model JSON of a \
match run over the same (raw) inputs to normalize them while blending, without corrected copies; or mosaic the \
normalized rasters of a match run."""


def _vectors(made: Made, files: dict[str, str]) -> Made:
    made.results |= {"SEAMLINES": files["seamlines"], "FOOTPRINTS": files["footprints"]}
    made.layers += [
        (files["seamlines"], "stacrrn seamlines", "SEAMLINES", "vector"),
        (files["footprints"], "stacrrn footprints", "FOOTPRINTS", "vector"),
    ]
    return made


class SeamlinesAlgorithm(StacrrnAlgorithm):
    """Seamlines and footprints, no mosaic."""

    NAME = "seamlines"
    DISPLAY = "Seamlines"
    GROUP = "Mosaic"
    HELP = SEAMLINES_HELP

    def define(self) -> None:
        """Inputs, seam options, output folder."""
        add_inputs(self, "Rasters")
        add_seams(self)
        add_workers_and_output(self)
        self.addOutput(QgsProcessingOutputVectorLayer("SEAMLINES", "Seamlines"))
        self.addOutput(QgsProcessingOutputVectorLayer("FOOTPRINTS", "Footprints"))

    def prepare(self, parameters: Parameters, context: QgsProcessingContext) -> Job:
        """Paths and seam options."""
        args = {**read_inputs(self, parameters, context), **read_seams(self, parameters, context)}
        args["workers"] = self.parameterAsInt(parameters, "WORKERS", context)
        return Job(self.parameterAsString(parameters, OUTPUT_FOLDER, context), args)

    def execute(self, job: Job, progress: StageProgress) -> Made:
        """:func:`stacrrn.mosaic_sources`, then :func:`stacrrn.pipeline.mosaic.mosaic.write_seamlines`."""
        from stacrrn import mosaic_sources
        from stacrrn.pipeline.mosaic.mosaic import write_seamlines

        a = job.args
        sources = mosaic_sources(
            a["paths"], bands=a["bands"], seam_resolution=a["seam_resolution"], workers=a["workers"]
        )
        progress.check()
        priority = priority_of(sources.plan, a["preferred"], a["weight"])
        _, files = write_seamlines(
            sources, job.out, priority=priority, seams=a["seams"], corridor=a["corridor"], workers=a["workers"]
        )
        return _vectors(Made({OUTPUT_FOLDER: job.out}), {k: str(v) for k, v in files.items()})


class MosaicAlgorithm(StacrrnAlgorithm):
    """A blended mosaic COG with seamlines and footprints."""

    NAME = "mosaic"
    DISPLAY = "Seamless mosaic"
    GROUP = "Mosaic"
    HELP = MOSAIC_HELP
    STAGES = (("mosaic", 1.0),)

    def define(self) -> None:
        """Inputs, feather, seams, grid, model, workers, output folder."""
        add_inputs(self, "Rasters")
        self.addParameter(
            number(
                "FEATHER",
                "Blend width across seams (mosaic pixels; 0: hard cut)",
                default=32.0,
                minimum=0,
                maximum=100000,
            )
        )
        add_seams(self)
        add_grid(self, "mosaic")
        self.addParameter(
            QgsProcessingParameterFile(
                "MODEL",
                "Normalize while blending with this model (stacrrn-model.json of a match run over these inputs)",
                extension="json",
                optional=True,
            )
        )
        add_workers_and_output(self)
        self.addOutput(QgsProcessingOutputRasterLayer("MOSAIC", "Mosaic"))
        self.addOutput(QgsProcessingOutputFile("ITEM", "STAC item of the mosaic"))
        self.addOutput(QgsProcessingOutputVectorLayer("SEAMLINES", "Seamlines"))
        self.addOutput(QgsProcessingOutputVectorLayer("FOOTPRINTS", "Footprints"))

    def prepare(self, parameters: Parameters, context: QgsProcessingContext) -> Job:
        """Paths, seam and grid options, the model file."""
        args = {**read_inputs(self, parameters, context), **read_seams(self, parameters, context)}
        args |= read_grid(self, parameters, context)
        args["feather"] = self.parameterAsDouble(parameters, "FEATHER", context)
        args["model"] = self.parameterAsFile(parameters, "MODEL", context) if is_set(parameters, "MODEL") else None
        args["workers"] = self.parameterAsInt(parameters, "WORKERS", context)
        return Job(self.parameterAsString(parameters, OUTPUT_FOLDER, context), args)

    def execute(self, job: Job, progress: StageProgress) -> Made:
        """:func:`stacrrn.mosaic_sources` (with the model, if any), then :func:`stacrrn.mosaic`."""
        from stacrrn import mosaic, mosaic_sources
        from stacrrn.pipeline.passes.apply import read_model

        a = job.args
        sources = mosaic_sources(
            a["paths"],
            bands=a["bands"],
            crs=a["crs"],
            resolution=a["resolution"],
            seam_resolution=a["seam_resolution"],
            model=read_model(a["model"]) if a["model"] else None,
            workers=a["workers"],
        )
        progress.check()
        made = mosaic(
            sources,
            job.out,
            feather=a["feather"],
            priority=priority_of(sources.plan, a["preferred"], a["weight"]),
            seams=a["seams"],
            corridor=a["corridor"],
            workers=a["workers"],
            progress=progress,
        )
        result = Made({OUTPUT_FOLDER: job.out, "MOSAIC": made.hrefs["mosaic"], "ITEM": made.item_href})
        result.layers.append((made.hrefs["mosaic"], "stacrrn mosaic", "MOSAIC", "raster"))
        return _vectors(result, made.hrefs)
