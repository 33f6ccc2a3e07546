"""stacrrn's option groups as Processing parameters: choices come from the library's registries.

Each ``add_*`` adds a group of parameters to an algorithm; the matching ``read_*`` turns their
values into the keyword arguments of :func:`stacrrn.match`, :func:`stacrrn.run` and the
mask, PIF and mosaic functions. Only called when stacrrn imports (see :mod:`.dependencies`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFolderDestination,
)

from .parameters import (
    Parameters,
    advanced,
    bbox_wgs84,
    comma_list,
    crs_text,
    datetime_range,
    enum,
    enum_values,
    is_set,
    layers,
    number,
    optional_int,
    optional_number,
    raster_sources,
    text,
    vector_files,
)

OUTPUT_FOLDER = "OUTPUT_FOLDER"
OVERLAP_CHOICES = {"auto": None, "yes": True, "no": False}


def add_inputs(alg: QgsProcessingAlgorithm, description: str = "Overlapping rasters") -> None:
    """``INPUT``: two or more rasters, and ``BANDS`` (advanced)."""
    alg.addParameter(layers("INPUT", description, minimum=2))
    alg.addParameter(advanced(text("BANDS", "Bands: 1-based numbers, comma-separated, e.g. 1,2,3 [default: all]")))


def read_inputs(alg: QgsProcessingAlgorithm, parameters: Parameters, context: QgsProcessingContext) -> dict[str, Any]:
    """``paths``, ``names`` (the layers' names) and ``bands`` (a list of strings, or ``None``)."""
    sources = raster_sources(alg, parameters, "INPUT", context)
    return {
        "paths": [path for path, _ in sources],
        "names": [name for _, name in sources],
        "bands": comma_list(alg, parameters, "BANDS", context),
    }


def add_workers_and_output(alg: QgsProcessingAlgorithm, output: str = "Output folder", optional: bool = False) -> None:
    """``WORKERS`` (threads) and the ``OUTPUT_FOLDER`` destination (a temporary folder by default)."""
    from stacrrn.options import ExecutionOptions

    workers = number(
        "WORKERS", "Threads for the pixel passes", integer=True, default=ExecutionOptions.workers, minimum=1, maximum=64
    )
    alg.addParameter(advanced(workers))
    folder = QgsProcessingParameterFolderDestination(OUTPUT_FOLDER, output, QgsProcessing.TEMPORARY_OUTPUT, optional)
    alg.addParameter(folder)


def add_grid(alg: QgsProcessingAlgorithm, what: str = "common grid of the statistics") -> None:
    """``CRS`` and ``RESOLUTION`` of a grid (advanced)."""
    alg.addParameter(
        advanced(QgsProcessingParameterCrs("CRS", f"CRS of the {what} [default: first input's]", optional=True))
    )
    alg.addParameter(
        advanced(number("RESOLUTION", f"Pixel size of the {what} [default: finest input's]", minimum=0, optional=True))
    )


def read_grid(alg: QgsProcessingAlgorithm, parameters: Parameters, context: QgsProcessingContext) -> dict[str, Any]:
    """``crs`` and ``resolution``."""
    return {
        "crs": crs_text(alg, parameters, "CRS", context),
        "resolution": optional_number(alg, parameters, "RESOLUTION", context),
    }


def add_model(alg: QgsProcessingAlgorithm) -> None:
    """Method, local extent and decay, local block grid, estimator, minimum overlap, overlap pixels and the grid."""
    from stacrrn.core.settings import ESTIMATORS, LOCAL_EXTENTS, METHODS, LocalParams
    from stacrrn.options import ModelOptions

    alg.addParameter(enum("METHOD", "Method", METHODS, ModelOptions.method))
    alg.addParameter(
        enum(
            "LOCAL_EXTENT",
            "Local step corrects: overlaps (fields reach 1 at LOCAL_DECAY blocks from them) or image (whole images: "
            "vignetting, BRDF gradients)",
            LOCAL_EXTENTS,
            LocalParams.extent,
        )
    )
    alg.addParameter(
        number(
            "LOCAL_DECAY",
            "Local step, overlaps: distance in blocks from the overlaps at which the fields reach 1",
            default=LocalParams.decay,
            minimum=1,
        )
    )
    alg.addParameter(
        number(
            "BLOCKS",
            "Local step: blocks along the longer side [default: 32]",
            integer=True,
            minimum=1,
            maximum=4096,
            optional=True,
        )
    )
    alg.addParameter(
        number(
            "BLOCK_SIZE",
            "Local step: block edge in CRS units (overrides the number of blocks)",
            minimum=0,
            optional=True,
        )
    )
    alg.addParameter(advanced(enum("ESTIMATOR", "Relative gain of a pair", ESTIMATORS, ModelOptions.estimator)))
    alg.addParameter(
        advanced(
            number(
                "MIN_OVERLAP",
                "Ignore overlaps with fewer valid pixels",
                integer=True,
                default=ModelOptions.min_overlap,
                minimum=1,
            )
        )
    )
    alg.addParameter(
        advanced(
            enum(
                "OVERLAP_PIXELS",
                "Pixelwise overlap RMSE/MAE, reading the overlaps again (auto: mosaics yes; time series no)",
                list(OVERLAP_CHOICES),
                next(iter(OVERLAP_CHOICES)),
            )
        )
    )
    add_grid(alg)


def read_model(alg: QgsProcessingAlgorithm, parameters: Parameters, context: QgsProcessingContext) -> dict[str, Any]:
    """Keyword arguments of :func:`stacrrn.match` / :func:`stacrrn.run` for the model."""
    from stacrrn import LocalParams

    local = LocalParams(
        extent=alg.parameterAsEnumString(parameters, "LOCAL_EXTENT", context),
        decay=alg.parameterAsDouble(parameters, "LOCAL_DECAY", context),
    )
    return {
        "method": alg.parameterAsEnumString(parameters, "METHOD", context),
        "local_params": local,
        "n_blocks": optional_int(alg, parameters, "BLOCKS", context),
        "block_size": optional_number(alg, parameters, "BLOCK_SIZE", context),
        "estimator": alg.parameterAsEnumString(parameters, "ESTIMATOR", context),
        "min_overlap": alg.parameterAsInt(parameters, "MIN_OVERLAP", context),
        "overlap_pixels": OVERLAP_CHOICES[alg.parameterAsEnumString(parameters, "OVERLAP_PIXELS", context)],
        **read_grid(alg, parameters, context),
    }


def add_cloud_masks(alg: QgsProcessingAlgorithm, choices: Sequence[str], default: str, *, local: bool) -> None:
    """The cloud test, reflectance scaling and, for local rasters, mask rasters and band names."""
    alg.addParameter(enum("CLOUD_MASK", "Cloud mask", choices, default))
    if local:
        from stacrrn.core.masks import QA_DECODERS

        alg.addParameter(
            layers(
                "MASKS",
                "Mask rasters (each for the input its file name starts with: tile01_qa.tif -> tile01)",
                optional=True,
            )
        )
        alg.addParameter(enum("MASK_KIND", "Mask rasters are", list(QA_DECODERS), "clear"))
        alg.addParameter(
            text(
                "BAND_NAMES",
                "Band names (eo:common_name per band used, e.g. blue,green,red,nir)",
            )
        )
    alg.addParameter(
        advanced(
            number(
                "REFLECTANCE_SCALE", "Reflectance = value x scale + offset: scale", minimum=0, maximum=10, optional=True
            )
        )
    )
    alg.addParameter(advanced(number("REFLECTANCE_OFFSET", "Reflectance offset", default=0.0, minimum=-10, maximum=10)))


def read_cloud_masks(
    alg: QgsProcessingAlgorithm,
    parameters: Parameters,
    context: QgsProcessingContext,
    inputs: Sequence[str] | None = None,
) -> dict[str, Any]:
    """``cloud_mask``, ``reflectance`` and, for local ``inputs``, ``masks`` and ``band_names``."""
    scale = optional_number(alg, parameters, "REFLECTANCE_SCALE", context)
    offset = alg.parameterAsDouble(parameters, "REFLECTANCE_OFFSET", context)
    out: dict[str, Any] = {
        "cloud_mask": alg.parameterAsEnumString(parameters, "CLOUD_MASK", context),
        "reflectance": None if scale is None else (scale, offset),
    }
    if inputs is not None:
        given = raster_sources(alg, parameters, "MASKS", context) if is_set(parameters, "MASKS") else []
        kind = alg.parameterAsEnumString(parameters, "MASK_KIND", context)
        out["masks"] = masks_by_input([path for path, _ in given], inputs, kind)
        out["band_names"] = comma_list(alg, parameters, "BAND_NAMES", context)
    return out


def masks_by_input(masks: Sequence[str], inputs: Sequence[str], kind: str) -> dict[str, str]:
    """``{input name: "mask path:kind"}``: each mask goes to the input with the longest name its name starts with.

    Raises
    ------
    QgsProcessingException
        For a mask no input name begins, or two masks for one input.
    """
    from stacrrn.io.raster import open_raster

    if not masks:
        return {}
    names = [open_raster(p).name for p in inputs]
    out: dict[str, str] = {}
    for path in masks:
        mask_name = open_raster(path).name
        owners = sorted((n for n in names if mask_name.startswith(n)), key=len)
        if not owners:
            raise QgsProcessingException(f"mask {mask_name}: its name starts with no input's ({', '.join(names)})")
        if owners[-1] in out:
            raise QgsProcessingException(f"two masks for input {owners[-1]}: {out[owners[-1]]} and {path}")
        out[owners[-1]] = f"{path}:{kind}"
    return out


def add_pif(alg: QgsProcessingAlgorithm, *, default: Sequence[str] = (), holdout: bool = True) -> None:
    """Pseudo-invariant features: criteria, include and exclude polygons, thresholds, holdout."""
    from stacrrn.options import PIF_KINDS, PifOptions

    alg.addParameter(
        enum("PIF", "Pseudo-invariant features (PIFs)", PIF_KINDS, list(default), multiple=True, optional=True)
    )
    alg.addParameter(layers("PIF_POLYGONS", "PIFs inside these polygons only", False, optional=True))
    alg.addParameter(layers("EXCLUDE", "Never use pixels inside these polygons", False, optional=True))
    alg.addParameter(
        advanced(
            number(
                "PIF_THRESHOLD",
                "IR-MAD: minimum no-change probability",
                default=PifOptions.threshold,
                minimum=0,
                maximum=0.999,
            )
        )
    )
    alg.addParameter(
        advanced(
            number(
                "PIF_MIN_SHARE",
                "IR-MAD: keep at least this share of each overlap",
                default=PifOptions.min_share,
                minimum=0,
                maximum=0.999,
            )
        )
    )
    if holdout:
        alg.addParameter(
            advanced(
                number(
                    "HOLDOUT",
                    "Share held out to validate the model [default: 0.2 with PIFs]",
                    minimum=0,
                    maximum=0.999,
                    optional=True,
                )
            )
        )


def read_pif(alg: QgsProcessingAlgorithm, parameters: Parameters, context: QgsProcessingContext) -> Any:
    """A :class:`stacrrn.PifOptions`, or ``None`` when nothing is asked."""
    from stacrrn import PifOptions

    return PifOptions.parse(
        enum_values(alg, parameters, "PIF", context) + vector_files(alg, parameters, "PIF_POLYGONS", context),
        vector_files(alg, parameters, "EXCLUDE", context),
        alg.parameterAsDouble(parameters, "PIF_THRESHOLD", context),
        optional_number(alg, parameters, "HOLDOUT", context) if alg.parameterDefinition("HOLDOUT") else 0.0,
        alg.parameterAsDouble(parameters, "PIF_MIN_SHARE", context),
    )


def add_search(alg: QgsProcessingAlgorithm) -> None:
    """A STAC API search: URL, collections, extent (canvas or layer), dates, at most N items."""
    alg.addParameter(text("STAC_URL", "STAC API URL (https://...)", optional=False))
    alg.addParameter(text("COLLECTIONS", "Collection ids, comma-separated"))
    alg.addParameter(QgsProcessingParameterExtent("EXTENT", "Area (map canvas or layer extent)", optional=True))
    alg.addParameter(QgsProcessingParameterDateTime("START", "From date-time", optional=True))
    alg.addParameter(QgsProcessingParameterDateTime("END", "To date-time", optional=True))
    alg.addParameter(advanced(number("MAX_ITEMS", "At most this many items", integer=True, minimum=1, optional=True)))


def read_search(alg: QgsProcessingAlgorithm, parameters: Parameters, context: QgsProcessingContext) -> Any:
    """A :class:`stacrrn.Search`."""
    from stacrrn import Search

    url = alg.parameterAsString(parameters, "STAC_URL", context).strip()
    if not url.startswith(("http://", "https://")):
        raise QgsProcessingException(f"STAC API URL {url!r}: give the API's http(s):// address")
    return Search(
        stac=url,
        collections=tuple(comma_list(alg, parameters, "COLLECTIONS", context) or ()),
        bbox=bbox_wgs84(alg, parameters, "EXTENT", context),
        datetime=datetime_range(alg, parameters, "START", "END", context),
        max_items=optional_int(alg, parameters, "MAX_ITEMS", context),
    )


def add_seams(alg: QgsProcessingAlgorithm) -> None:
    """Seamline placement and priorities."""
    from stacrrn.options import SEAM_MODES

    alg.addParameter(enum("SEAMS", "Seamlines", SEAM_MODES, SEAM_MODES[0]))
    alg.addParameter(layers("PRIORITY", "Preferred images (they win more area)", optional=True))
    alg.addParameter(
        number("PRIORITY_WEIGHT", "Priority of the preferred images (others: 1)", default=2.0, minimum=0.001)
    )
    alg.addParameter(
        advanced(
            number(
                "SEAM_CORRIDOR",
                "Least-cost seams: how far a seam may move (seam-grid pixels)",
                integer=True,
                default=16,
                minimum=1,
            )
        )
    )
    alg.addParameter(
        advanced(
            number(
                "SEAM_RESOLUTION", "Pixel size of the seam grid [default: 2048 pixels across]", minimum=0, optional=True
            )
        )
    )


def read_seams(alg: QgsProcessingAlgorithm, parameters: Parameters, context: QgsProcessingContext) -> dict[str, Any]:
    """``seams``, ``corridor``, ``seam_resolution`` and ``preferred`` (paths) with ``weight``."""
    preferred = raster_sources(alg, parameters, "PRIORITY", context) if is_set(parameters, "PRIORITY") else []
    return {
        "seams": alg.parameterAsEnumString(parameters, "SEAMS", context),
        "corridor": alg.parameterAsInt(parameters, "SEAM_CORRIDOR", context),
        "seam_resolution": optional_number(alg, parameters, "SEAM_RESOLUTION", context),
        "preferred": [path for path, _ in preferred],
        "weight": alg.parameterAsDouble(parameters, "PRIORITY_WEIGHT", context),
    }


def priority_of(plan: Any, preferred: Sequence[str], weight: float) -> dict[str, float]:
    """``{image name: weight}`` for the preferred images of a plan (matched by path).

    Raises
    ------
    QgsProcessingException
        For a preferred image that is not an input.
    """
    by_path = dict(zip(plan.paths, plan.names, strict=True))
    unknown = [p for p in preferred if p not in by_path]
    if unknown:
        raise QgsProcessingException(f"preferred images must be inputs too: {', '.join(unknown)}")
    return {by_path[p]: weight for p in preferred}


def flag(alg: QgsProcessingAlgorithm, name: str, description: str, default: bool, *, advanced_: bool = True) -> None:
    """A boolean parameter (advanced unless ``advanced_`` is false)."""
    param = QgsProcessingParameterBoolean(name, description, default)
    alg.addParameter(advanced(param) if advanced_ else param)
