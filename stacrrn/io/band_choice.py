"""Which assets of a STAC item hold spectral bands to normalize, and why the others do not.

Real catalogs publish far more than reflectance bands: Earth Search adds a JPEG 2000
alternate of every band (``red-jp2``), cloud and snow probabilities, AOT and water vapour;
Planetary Computer adds the true-colour ``visual`` image, thermal and surface-temperature
layers, and bit-packed quality bands, some without roles. Normalizing any of those is
wrong (a class code scaled by 1.2 is another class) or fails (a probability layer that is
empty once clouds are masked makes the least-squares system singular).

:func:`choose_assets` decides from the item's own metadata, in this order: media type
(rasters only), the classification extension and known quality keys (categorical: never
normalized, not even on request), roles, known auxiliary keys (for items without roles),
thermal bands (excluded by default), spectral band descriptions (``eo:bands``/``bands``
with a ``common_name`` or ``center_wavelength``), and alternates of the same bands (one
is read: a Cloud-Optimized GeoTIFF before a JPEG 2000 copy).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

import pystac

AssetKind = Literal["spectral", "thermal", "alternate", "categorical", "auxiliary", "not-raster", "undescribed"]
"""Why an asset is (``spectral``) or is not normalized by default."""

RASTER_MEDIA = ("image/tiff", "image/vnd.stac.geotiff", "image/jp2", "application/x-hdf")
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2")

EXCLUDED_ROLES = frozenset(
    {"visual", "overview", "thumbnail", "metadata", "cloud", "cloud-shadow", "snow-ice", "water-mask"}
    | {"land-water", "data-mask", "saturation", "qa", "classification", "temperature", "graphic"}
)
"""Roles of layers that are not surface reflectance (best-practices roles of the STAC spec and eo)."""

CATEGORICAL_KEYS = frozenset({"scl", "qa_pixel", "qa_radsat", "qa_aerosol", "sr_qa_aerosol", "bqa", "fmask"})
"""Keys (case-insensitive) of class-coded or bit-packed layers: Sentinel-2 SCL, Landsat QA bands."""

AUXILIARY_KEYS = frozenset(
    {"aot", "wvp", "qa", "visual", "preview", "rendered_preview", "thumbnail", "overview", "tilejson", "cloud", "snow"}
    | {"atran", "cdist", "drad", "emis", "emsd", "trad", "urad", "ang", "sr_atmos_opacity", "atmos_opacity"}
    | {"cloud_qa", "granule_metadata", "tileinfo_metadata", "product_metadata", "safe-manifest"}
)
"""Keys (case-insensitive) of auxiliary layers, recognised when an item gives them no telling roles."""

AUXILIARY_PREFIXES = ("qa_", "st_", "sr_qa", "sza", "saa", "vza", "vaa", "solar_", "sensor_", "view_")
AUXILIARY_SUFFIXES = ("_angle", "_angles", "-jp2-preview")
ALTERNATE_SUFFIXES = ("-jp2", "_jp2", "-jpeg2000")
"""Key suffixes of another encoding of an asset with the same key stem (Earth Search ``red-jp2``)."""

THERMAL_MICRONS = 3.0
"""Bands centred beyond this wavelength (micrometres) are thermal emission, not reflectance."""
THERMAL_NAMES = frozenset({"lwir", "lwir11", "lwir12", "tir"})


@dataclass(frozen=True)
class AssetChoice:
    """One asset of an item: whether it is normalized by default, and why (or why not)."""

    key: str
    kind: AssetKind
    reason: str
    alternate_of: str | None = None
    """For an ``alternate``: the key of the asset read instead."""

    @property
    def normalized(self) -> bool:
        """True if the asset is normalized when no ``--assets`` are given."""
        return self.kind == "spectral"


def asset_bands(asset: pystac.Asset, count: int | None = None) -> list[dict[str, Any]]:
    """Band descriptions of an asset (STAC 1.1 ``bands``, else ``eo:bands``, else ``raster:bands``).

    Without any, ``count`` anonymous bands (the header's band count), or one.
    """
    for key in ("bands", "eo:bands", "raster:bands"):
        value = asset.extra_fields.get(key)
        if isinstance(value, list) and value:
            return [_band_entry(b, asset, key) for b in value]
    return [{} for _ in range(count or 1)]


def _band_entry(entry: object, asset: pystac.Asset, key: str) -> dict[str, Any]:
    """A band description; STAC 0.9/1.0-beta assets give an index into the item's own ``eo:bands``."""
    if isinstance(entry, dict):
        return entry
    owner = asset.owner
    described = owner.properties.get(key) if isinstance(owner, pystac.Item) else None
    if isinstance(entry, int) and not isinstance(entry, bool) and isinstance(described, list):
        found = described[entry] if 0 <= entry < len(described) else None
        return found if isinstance(found, dict) else {}
    return {}


def common_name(band: dict[str, Any]) -> str | None:
    """A band's common name (``eo:common_name`` in STAC 1.1 ``bands``, ``common_name`` in ``eo:bands``)."""
    value = band.get("eo:common_name", band.get("common_name"))
    return value if isinstance(value, str) else None


def center_wavelength(band: dict[str, Any]) -> float | None:
    """A band's centre wavelength in micrometres, if given as a number."""
    value = band.get("eo:center_wavelength", band.get("center_wavelength"))
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def is_spectral(band: dict[str, Any]) -> bool:
    """True if a band description says where in the spectrum it is."""
    return common_name(band) is not None or center_wavelength(band) is not None


def is_thermal(band: dict[str, Any]) -> bool:
    """True for thermal-infrared bands (by common name or centre wavelength)."""
    wavelength = center_wavelength(band)
    return common_name(band) in THERMAL_NAMES or (wavelength is not None and wavelength > THERMAL_MICRONS)


def is_raster(asset: pystac.Asset) -> bool:
    """True for assets GDAL reads as rasters (GeoTIFF/COG, JPEG 2000, HDF; by media type or file name)."""
    media = (asset.media_type or "").lower()
    if media:
        return media.startswith(RASTER_MEDIA)
    return asset.href.lower().split("?")[0].endswith(RASTER_SUFFIXES)


def key_stem(key: str) -> str:
    """An asset key without a file suffix or alternate-encoding suffix, lower case.

    ``SCL-jp2`` -> ``scl``; ``QA_PIXEL.TIF`` (USGS items before STAC 1.0) -> ``qa_pixel``.
    """
    low = key.lower()
    low = next((low[: -len(s)] for s in RASTER_SUFFIXES if low.endswith(s)), low)
    return next((low[: -len(s)] for s in ALTERNATE_SUFFIXES if low.endswith(s)), low)


def is_categorical(key: str, asset: pystac.Asset) -> bool:
    """True for class-coded or bit-packed layers (classification extension, or a known quality key)."""
    described = [asset.extra_fields, *asset_bands(asset)]
    classified = any("classification:classes" in d or "classification:bitfields" in d for d in described)
    return classified or key_stem(key) in CATEGORICAL_KEYS


def _is_auxiliary_key(key: str) -> bool:
    stem = key_stem(key)
    return stem in AUXILIARY_KEYS or stem.startswith(AUXILIARY_PREFIXES) or stem.endswith(AUXILIARY_SUFFIXES)


def _kind(key: str, asset: pystac.Asset, described: bool) -> tuple[AssetKind, str]:
    """Kind of one asset before alternates are found; ``described``: the item describes bands spectrally."""
    bands = asset_bands(asset)
    roles = [r.lower() for r in asset.roles or []]
    if not is_raster(asset):
        return "not-raster", f"not a raster ({asset.media_type or 'no media type'})"
    if is_categorical(key, asset):
        return "categorical", "class codes or quality bits (never normalized)"
    if any(is_thermal(b) for b in bands):
        return "thermal", "thermal band: name it in --assets to normalize it"
    if excluded := sorted(EXCLUDED_ROLES.intersection(roles)):
        return "auxiliary", f"role {excluded[0]!r}"
    if roles and not {"data", "reflectance"}.intersection(roles):
        return "auxiliary", f"roles {', '.join(roles)} (not data)"
    if _is_auxiliary_key(key):
        return "auxiliary", "auxiliary layer (known key)"
    if described and not any(is_spectral(b) for b in bands):
        return "undescribed", "no spectral band description (common_name or center_wavelength)"
    names = [common_name(b) or str(b.get("name", "")) for b in bands if is_spectral(b)]
    return "spectral", f"spectral band ({', '.join(names)})" if names else "raster data"


def _signature(asset: pystac.Asset) -> tuple[tuple[str | None, float | None], ...] | None:
    """What bands an asset holds, when it says so spectrally; equal signatures are the same bands."""
    bands = asset_bands(asset)
    if not all(is_spectral(b) for b in bands):
        return None
    return tuple((common_name(b), center_wavelength(b)) for b in bands)


def _preference(asset: pystac.Asset) -> int:
    """Which of two encodings of the same bands to read: COG first, then other TIFFs, then the rest."""
    media = (asset.media_type or "").lower()
    return 0 if "cloud-optimized" in media else 1 if "tiff" in media else 2


def choose_assets(item: pystac.Item) -> list[AssetChoice]:
    """Every asset of ``item`` with its kind and reason, in the item's asset order.

    Only ``spectral`` assets are normalized by default. An asset that holds the same bands
    as another (same spectral descriptions, or the same key with a ``-jp2`` suffix) is an
    ``alternate``: the Cloud-Optimized GeoTIFF one is read.
    """
    described = any(is_spectral(b) for a in item.assets.values() for b in asset_bands(a))
    kinds = {key: _kind(key, asset, described) for key, asset in item.assets.items()}
    alternates: dict[str, str] = {}
    spectral = [k for k, (kind, _) in kinds.items() if kind in ("spectral", "thermal")]
    primary: dict[object, str] = {}
    for key in sorted(spectral, key=lambda k: _preference(item.assets[k])):
        stem = next((key[: -len(s)] for s in ALTERNATE_SUFFIXES if key.lower().endswith(s)), None)
        signature = _signature(item.assets[key])
        first = primary.get(signature) if signature is not None else None
        first = first or (stem if stem in item.assets and stem in spectral and stem != key else None)
        if first is not None:
            media = item.assets[key].media_type or "another encoding"
            kinds[key] = ("alternate", f"alternate of {first!r} ({media}): the same bands")
            alternates[key] = first
        elif signature is not None:
            primary[signature] = key
    return [AssetChoice(key, kind, reason, alternates.get(key)) for key, (kind, reason) in kinds.items()]


def default_asset_keys(item: pystac.Item) -> list[str]:
    """Keys of the assets normalized when no bands are named: the spectral reflectance bands."""
    return [c.key for c in choose_assets(item) if c.normalized]


def carried_keys(item: pystac.Item, normalized: Collection[str]) -> list[str]:
    """Keys of the assets an output item keeps as they are: all but the normalized ones and their alternates.

    An alternate of a normalized asset would offer the uncorrected pixels under the same band,
    so it is left out.
    """
    group = {c.key: c.alternate_of or c.key for c in choose_assets(item)}
    corrected = {group.get(k, k) for k in normalized}
    return [k for k in item.assets if k not in normalized and group[k] not in corrected]
