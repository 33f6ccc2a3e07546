"""The inputs of a STAC run: items, the bands chosen, their assets' headers, quality assets.

Headers are read once, concurrently (a remote header costs a few range requests); band
counts come from them where the STAC metadata describes none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pystac

from stacrrn.errors import InputError, ParameterError, StacrrnError
from stacrrn.io.band_choice import asset_bands, common_name
from stacrrn.io.raster import RasterInfo, open_raster, valid_shares
from stacrrn.io.stac import (
    COMMON_NAMES,
    QA_KINDS,
    BandSelection,
    asset_href,
    band_scaling,
    find_qa_asset,
    gdal_path,
    select_bands,
)
from stacrrn.io.storage import object_identity
from stacrrn.options import CLOUD_MASKS
from stacrrn.pipeline.execution.parallel import imap_bounded
from stacrrn.pipeline.inputs.spectral import SpectralBands


@dataclass(frozen=True)
class StacInputs:
    """The items of a run, the chosen bands, and each item's asset headers."""

    items: list[pystac.Item]
    selection: BandSelection
    assets: list[dict[str, RasterInfo]]
    identity: list[list[object]] = field(default_factory=list)
    qa: list[QaAsset | None] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Items left out because an asset could not be opened (``skip_errors``), with the reasons."""
    left_out: dict[str, str] = field(default_factory=dict)
    """Bands left out because they are mostly nodata in some item (:func:`leave_out_sparse_bands`), with why."""


@dataclass(frozen=True)
class QaAsset:
    """An item's quality asset (e.g. Landsat ``qa_pixel``, Sentinel-2 ``scl``) and how to decode it."""

    key: str
    kind: str
    info: RasterInfo


def quality_assets(items: Sequence[pystac.Item], cloud_mask: str) -> list[tuple[str, str] | None]:
    """Each item's quality asset ``(key, kind)`` to mask pass 1 with, per the ``--cloud-mask`` choice.

    Raises
    ------
    ParameterError
        For an unknown choice.
    InputError
        With ``qa`` when an item has no quality asset.
    """
    if cloud_mask not in CLOUD_MASKS:
        raise ParameterError(f"unknown --cloud-mask {cloud_mask!r}; choose one of {', '.join(CLOUD_MASKS)}")
    if cloud_mask not in ("auto", "qa"):  # none, or a mask computed from the pixels
        return [None] * len(items)
    found = [find_qa_asset(it) for it in items]
    missing = [it.id for it, f in zip(items, found, strict=True) if f is None]
    if missing and cloud_mask == "qa":
        raise InputError(
            f"item {missing[0]} has no quality asset ({' or '.join(QA_KINDS)}); use --cloud-mask none or auto"
        )
    return [None] * len(items) if missing else found


def open_assets(
    items: Sequence[pystac.Item],
    names: Sequence[str] | None = None,
    workers: int = 4,
    cloud_mask: str = "none",
    skip_errors: bool = False,
) -> StacInputs:
    """Choose the bands and read the header of every selected asset of every item (concurrently).

    Band counts come from the headers where the STAC metadata does not describe an asset's
    bands, so a multi-band asset without ``eo:bands`` is not mistaken for a single band.
    With ``skip_errors``, an item whose asset cannot be opened is left out and recorded in
    :attr:`StacInputs.skipped` instead.

    Raises
    ------
    InputError
        If an asset cannot be opened (missing, not a raster, no CRS), naming item and asset,
        or if a band name resolves on no asset.
    """
    preliminary = select_bands(items, names)
    qa = quality_assets(items, cloud_mask)
    jobs = [(k, key) for k in range(len(items)) for key in preliminary.assets]
    jobs += [(k, found[0]) for k, found in enumerate(qa) if found is not None]

    def task(job: tuple[int, str]) -> tuple[int, str, RasterInfo | InputError, list[object]]:
        k, key = job
        item = items[k]
        href = asset_href(item, key)
        try:
            info = open_raster(gdal_path(href))
        except InputError as exc:
            error = type(exc)(f"item {item.id}, asset {key!r}: {exc}")
            if not skip_errors:
                raise error from None
            return k, key, error, []
        return k, key, replace(info, name=f"{item.id}_{key}"), object_identity(href)

    headers: list[dict[str, RasterInfo]] = [{} for _ in items]
    identity: list[list[object]] = [[] for _ in items]
    failed: dict[int, str] = {}
    for k, key, info, ident in imap_bounded(task, jobs, max(1, workers)):
        if isinstance(info, InputError):
            failed.setdefault(k, str(info))
            continue
        headers[k][key] = info
        identity[k].append(ident)
    keep = [k for k in range(len(items)) if k not in failed]
    skipped = {items[k].id: reason for k, reason in sorted(failed.items())}
    items = [items[k] for k in keep]
    headers, identity, qa = [headers[k] for k in keep], [identity[k] for k in keep], [qa[k] for k in keep]
    qa_assets = [None if f is None else QaAsset(f[0], f[1], headers[k].pop(f[0])) for k, f in enumerate(qa)]
    if not items:
        raise InputError(f"no item could be opened; the first failure: {next(iter(failed.values()))}")
    selection = select_bands(items, names, {key: h.count for key, h in headers[0].items()})
    for k, item in enumerate(items):
        for key, positions in selection.assets.items():
            need = max(selection.bands[p].index for p in positions)
            if headers[k][key].count < need:
                raise InputError(
                    f"item {item.id}, asset {key!r} has {headers[k][key].count} band(s); band {need} was selected"
                )
    selection, left_out = leave_out_sparse_bands(items, selection, headers, workers)
    return StacInputs(list(items), selection, headers, identity, qa_assets, skipped, left_out)


SPARSE_BAND = 0.1
"""A band valid on less than this share of what its item's fullest selected band covers is left out."""


def leave_out_sparse_bands(
    items: Sequence[pystac.Item], selection: BandSelection, headers: Sequence[dict[str, RasterInfo]], workers: int
) -> tuple[BandSelection, dict[str, str]]:
    """The selection without bands that are (nearly) empty in some item, and a warning for each.

    Pixels count in the statistics only where every band is valid, so one empty layer (a cloud
    probability of 0 stored as nodata, a band missing from one item) would leave nothing to fit.
    Validity is judged on a decimated read (an overview of a COG); such a band is not normalized
    and is carried over unchanged.
    """
    jobs = [(k, key) for k in range(len(items)) for key in selection.assets]

    def task(job: tuple[int, str]) -> tuple[int, str, list[float]]:
        k, key = job
        bands = [selection.bands[p].index for p in selection.assets[key]]
        try:
            return k, key, valid_shares(headers[k][key], bands)
        except StacrrnError:  # unreadable pixels are pass 1's to report (or skip): judge nothing here
            return k, key, [1.0] * len(bands)

    shares = np.zeros((len(items), len(selection.bands)))
    for k, key, values in imap_bounded(task, jobs, max(1, workers)):
        shares[k, selection.assets[key]] = values
    fullest = shares.max(axis=1)
    reasons = {}
    for p, ref in enumerate(selection.bands):
        sparse = [k for k in range(len(items)) if shares[k, p] < SPARSE_BAND * fullest[k]]
        if sparse:
            k = sparse[0]
            reasons[ref.label] = (
                f"band {ref.label} (asset {ref.asset!r}, band {ref.index}) is valid on only {100 * shares[k, p]:.1f} % "
                f"of item {items[k].id} (its fullest band: {100 * fullest[k]:.0f} %)"
                + (f" and {len(sparse) - 1} other item(s)" if len(sparse) > 1 else "")
                + "; left out of the normalization (carried over unchanged)"
            )
    kept = [ref for ref in selection.bands if ref.label not in reasons]
    return BandSelection.of(kept), reasons


def band_common_names(inputs: StacInputs) -> list[str | None]:
    """``eo:common_name`` of each selected band (from the first item's asset metadata), or ``None``."""
    out: list[str | None] = []
    for ref in inputs.selection.bands:
        described = asset_bands(inputs.items[0].assets[ref.asset])
        band = described[ref.index - 1] if ref.index <= len(described) else {}
        out.append(common_name(band) or (ref.label if ref.label in COMMON_NAMES else None))
    return out


def reflectance_scaling(inputs: StacInputs, position: int) -> tuple[float, float] | None:
    """``(scale, offset)`` turning a band's values into reflectance, from its ``raster:bands`` metadata."""
    ref = inputs.selection.bands[position]
    return band_scaling(inputs.items[0].assets[ref.asset], ref.index)


REFLECTIVE = ("coastal", "blue", "green", "red", "yellow", "pan", "nir", "nir08", "nir09", "swir16", "swir22")
"""Common names of reflective bands (thermal bands carry another scaling: brightness temperature)."""


def spectral_bands(inputs: StacInputs, reflectance: tuple[float, float] | None = None) -> SpectralBands:
    """Spectral roles of the selected bands; scaling ``reflectance`` or from ``raster:bands``."""
    names = band_common_names(inputs)
    reflective = [p for p, name in enumerate(names) if name in REFLECTIVE or str(name).startswith("rededge")]
    scaling = reflectance or next((s for p in reflective if (s := reflectance_scaling(inputs, p))), None)
    return SpectralBands(tuple(names), tuple(inputs.selection.labels), scaling)
