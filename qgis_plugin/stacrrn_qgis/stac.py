"""``stacrrn:stac_search`` and ``stacrrn:stac_run``: search a STAC API, normalize what it selects."""

from __future__ import annotations

import json
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputNumber,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterFileDestination,
)

from .base import Job, Made, StacrrnAlgorithm, StageProgress
from .options import (
    OUTPUT_FOLDER,
    add_cloud_masks,
    add_model,
    add_pif,
    add_search,
    add_workers_and_output,
    flag,
    read_cloud_masks,
    read_model,
    read_pif,
    read_search,
)
from .parameters import Parameters, advanced, comma_list, enum, number, optional_int, text

SEARCH_HELP = """Searches a STAC API (collections, the area of the map canvas or of a layer, dates) as \
<code>stacrrn search --json</code> does, and loads the items' footprints with their properties as a layer."""

RUN_HELP = """Searches a STAC API and normalizes the scenes it selects, as <code>stacrrn run</code> does: \
corrected COGs, block maps, the model and STAC items (and a collection) to the output folder, or to an \
<code>s3://bucket/prefix</code> when one is given (AWS credentials and endpoint from the usual AWS_* variables). \
The corrected assets are added to the project (from S3 through GDAL's /vsis3/). Optionally then a mosaic of them."""


def gdal_path(href: str) -> str:
    """A path GDAL (and QGIS) opens: ``s3://b/k`` becomes ``/vsis3/b/k``."""
    return "/vsis3/" + href[5:] if href.startswith("s3://") else href.removeprefix("file://")


class StacSearchAlgorithm(StacrrnAlgorithm):
    """The items of a STAC search as a footprint layer."""

    NAME = "stac_search"
    DISPLAY = "STAC search (footprints)"
    GROUP = "STAC"
    HELP = SEARCH_HELP

    def define(self) -> None:
        """Search parameters and the GeoJSON file."""
        add_search(self)
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT", "Items (GeoJSON)", "GeoJSON (*.geojson)", QgsProcessing.TEMPORARY_OUTPUT
            )
        )
        self.addOutput(QgsProcessingOutputNumber("COUNT", "Items found"))

    def prepare(self, parameters: Parameters, context: QgsProcessingContext) -> Job:
        """The :class:`stacrrn.Search`."""
        out = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        return Job(out, {"search": read_search(self, parameters, context)})

    def execute(self, job: Job, progress: StageProgress) -> Made:
        """:func:`stacrrn.search_items`, written as a FeatureCollection."""
        from stacrrn import search_items

        items = search_items(job.args["search"])
        progress.check()
        features = [it.to_dict(transform_hrefs=False) for it in items]
        with open(job.out, "w", encoding="utf-8") as f:
            json.dump({"type": "FeatureCollection", "features": features}, f)
        made = Made({"OUTPUT": job.out, "COUNT": len(items)})
        made.layers.append((job.out, f"stacrrn search: {len(items)} items", "OUTPUT", "vector"))
        return made


class StacRunAlgorithm(StacrrnAlgorithm):
    """Search, normalize and publish; load the corrected assets."""

    NAME = "stac_run"
    DISPLAY = "STAC search and normalize (run)"
    GROUP = "STAC"
    HELP = RUN_HELP
    STAGES = (("pif fit", 1.0), ("statistics", 4.0), ("overlaps", 1.0), ("apply", 4.0), ("mosaic", 3.0))

    def define(self) -> None:
        """Search, bands, mode, model, masks, PIFs, run options, output and mosaic."""
        from stacrrn.options import (
            CLOUD_MASKS,
            MODES,
            ON_ERROR,
            SEAM_MODES,
            ExecutionOptions,
            InputOptions,
            MaskOptions,
            OutputOptions,
        )

        add_search(self)
        self.addParameter(
            text(
                "ASSETS",
                "Bands: asset keys, asset.N, band or common names, comma-separated [default: reflectance bands]",
            )
        )
        self.addParameter(enum("MODE", "Mode", MODES, InputOptions.mode))
        self.addParameter(
            advanced(
                number(
                    "NEIGHBOURS",
                    "Time series: pair each date with its K nearest dates",
                    integer=True,
                    minimum=1,
                    optional=True,
                )
            )
        )
        flag(self, "STAR", "Time series: pair every date with the reference dates", InputOptions.star)
        self.addParameter(text("REFERENCES", "Reference item ids, comma-separated [default: all items]"))
        add_model(self)
        add_cloud_masks(self, CLOUD_MASKS, MaskOptions.cloud_mask, local=False)
        add_pif(self)
        self.addParameter(advanced(text("COLLECTION_ID", "Output collection id [default: <input collection>-rrn]")))
        on_error = enum("ON_ERROR", "An item that cannot be read or written", ON_ERROR, OutputOptions.on_error)
        self.addParameter(advanced(on_error))
        flag(self, "RESUME", "Reuse cached statistics and items made with the same model", ExecutionOptions.resume)
        self.addParameter(text("S3_PREFIX", "Output to s3://bucket/prefix instead of a folder"))
        add_workers_and_output(self, "Output folder (unless an S3 prefix is given)", optional=True)
        flag(self, "MOSAIC", "Then a mosaic of the corrected scenes (OUT/mosaic/)", False, advanced_=False)
        self.addParameter(
            advanced(
                number("FEATHER", "Mosaic: blend width across seams (pixels)", default=32.0, minimum=0, maximum=100000)
            )
        )
        self.addParameter(advanced(enum("SEAMS", "Mosaic: seamlines", SEAM_MODES, SEAM_MODES[0])))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUT_LAYERS", "Normalized assets"))
        self.addOutput(QgsProcessingOutputFile("COLLECTION", "Output collection"))
        self.addOutput(QgsProcessingOutputRasterLayer("MOSAIC_LAYER", "Mosaic"))
        self.addOutput(QgsProcessingOutputVectorLayer("SEAMLINES", "Seamlines"))

    def prepare(self, parameters: Parameters, context: QgsProcessingContext) -> Job:
        """The search and the keywords of :func:`stacrrn.run`."""
        s3 = self.parameterAsString(parameters, "S3_PREFIX", context).strip()
        if s3 and not s3.startswith("s3://"):
            raise QgsProcessingException(f"S3 prefix {s3!r}: write s3://bucket/prefix (or leave it empty)")
        kwargs: dict[str, Any] = {
            "assets": comma_list(self, parameters, "ASSETS", context),
            "mode": self.parameterAsEnumString(parameters, "MODE", context),
            "neighbours": optional_int(self, parameters, "NEIGHBOURS", context),
            "star": self.parameterAsBool(parameters, "STAR", context),
            "references": comma_list(self, parameters, "REFERENCES", context),
            "pif": read_pif(self, parameters, context),
            "collection_id": self.parameterAsString(parameters, "COLLECTION_ID", context).strip() or None,
            "on_error": self.parameterAsEnumString(parameters, "ON_ERROR", context),
            "resume": self.parameterAsBool(parameters, "RESUME", context),
            "workers": self.parameterAsInt(parameters, "WORKERS", context),
            **read_model(self, parameters, context),
            **read_cloud_masks(self, parameters, context),
        }
        mosaic = None
        if self.parameterAsBool(parameters, "MOSAIC", context):
            feather = self.parameterAsDouble(parameters, "FEATHER", context)
            mosaic = {"feather": feather, "seams": self.parameterAsEnumString(parameters, "SEAMS", context)}
        out = s3.rstrip("/") or self.parameterAsString(parameters, OUTPUT_FOLDER, context)
        if not out:
            raise QgsProcessingException("give an output folder or an s3://bucket/prefix")
        search = read_search(self, parameters, context)
        return Job(out, {"search": search, "kwargs": kwargs, "mosaic": mosaic, "s3": bool(s3)})

    def execute(self, job: Job, progress: StageProgress) -> Made:
        """:func:`stacrrn.run`, then :func:`stacrrn.mosaic_of_run` if asked."""
        from stacrrn import mosaic_of_run, run
        from stacrrn.report.run_outputs import data_assets

        kwargs = job.args["kwargs"]
        result = run(job.args["search"], job.out, progress=progress, **kwargs)
        for warning in result.warnings:
            progress.feedback.pushWarning(f"stacrrn: {warning}")
        made = Made({OUTPUT_FOLDER: "" if job.args["s3"] else job.out, "COLLECTION": result.collection_href})
        for item in result.items:
            assets = data_assets(item)
            for key, asset in assets:
                name = f"{item['id']} (normalized)" if len(assets) == 1 else f"{item['id']} {key} (normalized)"
                made.layers.append((gdal_path(asset["href"]), name, "OUTPUT_LAYERS", "raster"))
        made.results["OUTPUT_LAYERS"] = [path for path, *_ in made.layers]
        if job.args["mosaic"] is not None:
            progress.check()
            workers = kwargs["workers"]
            mosaic = mosaic_of_run(
                result.items,
                result.out,
                assets=kwargs["assets"],
                workers=workers,
                progress=progress,
                **job.args["mosaic"],
            )
            hrefs = {k: gdal_path(v) for k, v in mosaic.hrefs.items()}
            made.results |= {"MOSAIC_LAYER": hrefs["mosaic"], "SEAMLINES": hrefs["seamlines"]}
            made.layers += [
                (hrefs["mosaic"], "stacrrn mosaic", "MOSAIC_LAYER", "raster"),
                (hrefs["seamlines"], "stacrrn seamlines", "SEAMLINES", "vector"),
            ]
        return made
