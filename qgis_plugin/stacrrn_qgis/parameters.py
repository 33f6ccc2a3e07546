"""Typed Processing parameters and their values as plain Python (paths, numbers, lists).

Constructors set the flags stacrrn's options need (optional, advanced, ranges); readers run
in ``prepareAlgorithm`` (the main thread, where layers may be touched) and return what the
library takes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsMapLayer,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsProcessingUtils,
    QgsProviderRegistry,
    QgsVectorFileWriter,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt

Parameters = dict[str, Any]

WGS84 = "EPSG:4326"


def advanced(param: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    """Mark ``param`` as advanced (shown under "Advanced Parameters" in the dialog)."""
    param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return param


def enum(
    name: str,
    description: str,
    options: Sequence[str],
    default: str | Sequence[str] | None = None,
    *,
    multiple: bool = False,
    optional: bool = False,
) -> QgsProcessingParameterEnum:
    """An enum whose values are the option strings themselves (e.g. a stacrrn registry's names).

    ``processing.run`` then takes ``"METHOD": "global"`` as well as an index.
    """
    return QgsProcessingParameterEnum(name, description, list(options), multiple, default, optional, True)


def number(
    name: str,
    description: str,
    *,
    integer: bool = False,
    default: float | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    optional: bool = False,
) -> QgsProcessingParameterNumber:
    """An integer or double parameter with an optional range."""
    kind = QgsProcessingParameterNumber.Integer if integer else QgsProcessingParameterNumber.Double
    param = QgsProcessingParameterNumber(name, description, kind, default, optional)
    if minimum is not None:
        param.setMinimum(minimum)
    if maximum is not None:
        param.setMaximum(maximum)
    return param


def text(
    name: str, description: str, default: str | None = None, *, optional: bool = True
) -> QgsProcessingParameterString:
    """A one-line string (names the data defines: collection ids, asset keys, band names)."""
    return QgsProcessingParameterString(name, description, default, False, optional)


def layers(
    name: str, description: str, raster: bool = True, *, optional: bool = False, minimum: int = 0
) -> QgsProcessingParameterMultipleLayers:
    """Several raster (or polygon) layers."""
    kind = QgsProcessing.TypeRaster if raster else QgsProcessing.TypeVectorPolygon
    param = QgsProcessingParameterMultipleLayers(name, description, kind, None, optional)
    if minimum:
        param.setMinimumNumberInputs(minimum)
    return param


def is_set(parameters: Parameters, name: str) -> bool:
    """True if the caller gave ``name`` a value (``None`` and empty strings are unset)."""
    value = parameters.get(name)
    return value is not None and value != ""


def optional_number(
    alg: QgsProcessingAlgorithm, parameters: Parameters, name: str, context: QgsProcessingContext
) -> float | None:
    """The number, or ``None`` when not set."""
    return alg.parameterAsDouble(parameters, name, context) if is_set(parameters, name) else None


def optional_int(
    alg: QgsProcessingAlgorithm, parameters: Parameters, name: str, context: QgsProcessingContext
) -> int | None:
    """The integer, or ``None`` when not set."""
    return alg.parameterAsInt(parameters, name, context) if is_set(parameters, name) else None


def comma_list(
    alg: QgsProcessingAlgorithm, parameters: Parameters, name: str, context: QgsProcessingContext
) -> list[str] | None:
    """A comma-separated string as a list (``None`` when empty)."""
    values = [v.strip() for v in alg.parameterAsString(parameters, name, context).split(",") if v.strip()]
    return values or None


def enum_values(
    alg: QgsProcessingAlgorithm, parameters: Parameters, name: str, context: QgsProcessingContext
) -> list[str]:
    """The chosen options of a multiple-choice enum (static strings)."""
    return list(alg.parameterAsEnumStrings(parameters, name, context))


def crs_text(
    alg: QgsProcessingAlgorithm, parameters: Parameters, name: str, context: QgsProcessingContext
) -> str | None:
    """A CRS parameter as text stacrrn (PROJ) reads: ``EPSG:xxxx`` or WKT; ``None`` when not set."""
    if not is_set(parameters, name):
        return None
    crs = alg.parameterAsCrs(parameters, name, context)
    if not crs.isValid():
        return None
    return crs.authid() or crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED)


def raster_sources(
    alg: QgsProcessingAlgorithm, parameters: Parameters, name: str, context: QgsProcessingContext
) -> list[tuple[str, str]]:
    """``(path, layer name)`` of each raster layer of a multiple-layers parameter, in the given order.

    Raises
    ------
    QgsProcessingException
        For a layer GDAL does not read from a file or URL (e.g. a WMS or a virtual raster).
    """
    out = []
    for layer in alg.parameterAsLayerList(parameters, name, context):
        if layer.type() != QgsMapLayer.RasterLayer or layer.providerType() != "gdal":
            raise QgsProcessingException(
                f"{layer.name()}: stacrrn reads GDAL rasters (files or URLs); this layer comes from "
                f"'{layer.providerType()}': save it as a GeoTIFF first"
            )
        out.append((layer.source(), layer.name()))
    return out


def vector_files(
    alg: QgsProcessingAlgorithm, parameters: Parameters, name: str, context: QgsProcessingContext
) -> list[str]:
    """A file stacrrn can read for each polygon layer: its own file, or a GeoPackage copy in the temp folder.

    A layer that is a whole file (GeoJSON, shapefile, a GeoPackage opened without naming a layer)
    is passed as is: stacrrn reads its first layer, as QGIS does. Any other layer (one layer of
    a multi-layer file, a subset, a memory or database layer) is written out first.
    """
    out = []
    for layer in alg.parameterAsLayerList(parameters, name, context):
        parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
        path = parts.get("path") or ""
        named = parts.get("layerName") or parts.get("layerId") is not None or parts.get("subset")
        if layer.providerType() == "ogr" and os.path.isfile(path) and not named:
            out.append(path)
        else:
            out.append(_write_copy(layer, context))
    return out


def _write_copy(layer: QgsVectorLayer, context: QgsProcessingContext) -> str:
    target = QgsProcessingUtils.generateTempFilename(f"{layer.id()}.gpkg")
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    error, message, *_ = QgsVectorFileWriter.writeAsVectorFormatV3(layer, target, context.transformContext(), options)
    if error != QgsVectorFileWriter.NoError:
        raise QgsProcessingException(f"cannot write a copy of {layer.name()} for stacrrn: {message}")
    return target


def bbox_wgs84(
    alg: QgsProcessingAlgorithm, parameters: Parameters, name: str, context: QgsProcessingContext
) -> tuple[float, float, float, float] | None:
    """An extent parameter as a STAC bbox (west, south, east, north in WGS 84); ``None`` when not set.

    The extent is transformed from its own CRS (a layer's, the canvas', or the one written
    after it), else the project's, with its edges densified (``transformBoundingBox``).
    """
    if not is_set(parameters, name):
        return None
    rect = alg.parameterAsExtent(parameters, name, context)
    crs = alg.parameterAsExtentCrs(parameters, name, context)
    if not crs.isValid() and context.project() is not None:
        crs = context.project().crs()
    target = QgsCoordinateReferenceSystem(WGS84)
    if crs.isValid() and crs != target:
        rect = QgsCoordinateTransform(crs, target, context.transformContext()).transformBoundingBox(rect)
    return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())


def datetime_range(
    alg: QgsProcessingAlgorithm, parameters: Parameters, start: str, end: str, context: QgsProcessingContext
) -> str | None:
    """Two optional date-time parameters as an RFC 3339 interval (``..`` for an open end); ``None`` if neither."""
    ends = []
    for name in (start, end):
        when = alg.parameterAsDateTime(parameters, name, context) if is_set(parameters, name) else None
        ends.append(when.toUTC().toString(Qt.ISODate) if when is not None and when.isValid() else "..")
    if ends == ["..", ".."]:
        return None
    if ends[0] != ".." and ends[1] != ".." and ends[0] > ends[1]:
        raise QgsProcessingException(f"the search starts ({ends[0]}) after it ends ({ends[1]})")
    return "/".join(ends)
