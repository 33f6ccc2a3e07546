"""``stacrrn:clouds`` and ``stacrrn:pif``: clear-sky and pseudo-invariant feature masks of local rasters."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingOutputMultipleLayers

from .base import Job, Made, StacrrnAlgorithm, StageProgress
from .options import (
    OUTPUT_FOLDER,
    add_cloud_masks,
    add_inputs,
    add_pif,
    add_workers_and_output,
    read_cloud_masks,
    read_inputs,
    read_pif,
)
from .parameters import Parameters

CLOUDS_HELP = """Writes each input's clear-sky mask as a COG on the common grid (1 clear, 0 masked, 255 no data), \
as <code>stacrrn clouds</code> does: from mask rasters (matched to the inputs by file name; Landsat \
<code>qa_pixel</code>, Sentinel-2 <code>scl</code> or non-zero = clear) and/or the spectral cloud test (needs the \
band names blue and red and the reflectance scale). <i>auto</i>: the spectral test when band names are given."""

PIF_HELP = """Writes each overlapping pair's pseudo-invariant pixels as a COG (1 PIF, 0 not, 255 outside the \
overlap), as <code>stacrrn pif</code> does: IR-MAD no-change probability, NDVI/NIR limits, include polygons, minus \
exclude polygons; cloud masks as for the clouds algorithm."""


def _masks(job: Job, products: list, suffix: str) -> Made:
    paths = [str(p.path) for p in products]
    made = Made({OUTPUT_FOLDER: job.out, "OUTPUT_LAYERS": paths})
    made.layers = [(str(p.path), f"{p.name} {suffix}", "OUTPUT_LAYERS", "raster") for p in products]
    return made


class CloudMasksAlgorithm(StacrrnAlgorithm):
    """Clear-sky masks of local rasters."""

    NAME = "clouds"
    DISPLAY = "Cloud masks"
    GROUP = "Masks and PIFs"
    HELP = CLOUDS_HELP
    STAGES = (("masks", 1.0),)

    def define(self) -> None:
        """Inputs, the cloud test and mask rasters, workers, output folder."""
        from stacrrn.options import LOCAL_CLOUD_MASKS

        add_inputs(self, "Rasters")
        add_cloud_masks(self, LOCAL_CLOUD_MASKS, "auto", local=True)
        add_workers_and_output(self)
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUT_LAYERS", "Clear-sky masks"))

    def prepare(self, parameters: Parameters, context: QgsProcessingContext) -> Job:
        """Paths and the keywords of :func:`stacrrn.mask_plans`."""
        from stacrrn.pipeline.mask_products import local_cloud_mask

        inputs = read_inputs(self, parameters, context)
        masking = read_cloud_masks(self, parameters, context, inputs["paths"])
        masking["cloud_mask"] = local_cloud_mask(masking["cloud_mask"], masking["band_names"], masking["masks"])
        workers = self.parameterAsInt(parameters, "WORKERS", context)
        out = self.parameterAsString(parameters, OUTPUT_FOLDER, context)
        return Job(out, {"paths": inputs["paths"], "bands": inputs["bands"], "workers": workers, "masking": masking})

    def execute(self, job: Job, progress: StageProgress) -> Made:
        """:func:`stacrrn.mask_plans` then :func:`stacrrn.write_cloud_masks`."""
        from stacrrn import mask_plans, write_cloud_masks

        a = job.args
        plain, masked = mask_plans(a["paths"], bands=a["bands"], workers=a["workers"], **a["masking"])
        progress.check()
        return _masks(job, write_cloud_masks(plain, masked, Path(job.out), a["workers"], progress), "clear mask")


class PifAlgorithm(StacrrnAlgorithm):
    """Pseudo-invariant feature masks of each overlapping pair."""

    NAME = "pif"
    DISPLAY = "Pseudo-invariant features (PIF masks)"
    GROUP = "Masks and PIFs"
    HELP = PIF_HELP
    STAGES = (("pif fit", 2.0), ("pif masks", 3.0))

    def define(self) -> None:
        """Inputs, PIF criteria, cloud masks, workers, output folder."""
        from stacrrn.options import LOCAL_CLOUD_MASKS

        add_inputs(self, "Rasters")
        add_pif(self, default=("imad",), holdout=False)
        add_cloud_masks(self, LOCAL_CLOUD_MASKS, "auto", local=True)
        add_workers_and_output(self)
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUT_LAYERS", "PIF masks"))

    def prepare(self, parameters: Parameters, context: QgsProcessingContext) -> Job:
        """Paths, the PIF options and the keywords of :func:`stacrrn.mask_plans`."""
        inputs = read_inputs(self, parameters, context)
        pif = read_pif(self, parameters, context)
        if pif is None:
            raise QgsProcessingException("PIF masks need a criterion: IR-MAD, NDVI or include polygons")
        masking = read_cloud_masks(self, parameters, context, inputs["paths"])
        workers = self.parameterAsInt(parameters, "WORKERS", context)
        out = self.parameterAsString(parameters, OUTPUT_FOLDER, context)
        args = {"paths": inputs["paths"], "bands": inputs["bands"], "workers": workers, "masking": masking, "pif": pif}
        return Job(out, args)

    def execute(self, job: Job, progress: StageProgress) -> Made:
        """:func:`stacrrn.mask_plans` then :func:`stacrrn.write_pif_masks`."""
        from stacrrn import mask_plans, write_pif_masks

        a = job.args
        _, plan = mask_plans(a["paths"], bands=a["bands"], pif=a["pif"], workers=a["workers"], **a["masking"])
        progress.check()
        products, warnings = write_pif_masks(plan, Path(job.out), a["workers"], progress)
        for warning in warnings:
            progress.feedback.pushWarning(f"stacrrn: {warning}")
        return _masks(job, products, "PIFs")
