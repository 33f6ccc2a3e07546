"""Mask products: per-image cloud masks and per-pair PIF masks as uint8 COGs on the common grid.

Values: 1 usable (clear / pseudo-invariant), 0 masked (cloud, shadow... / not invariant),
255 no data. Written chunk by chunk, each file appearing only when complete.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pystac
from numpy.typing import NDArray

from stacrrn.errors import ParameterError
from stacrrn.io.cog import cog_writer
from stacrrn.io.stac import Search, stac_items_of
from stacrrn.io.storage import configure_cloud
from stacrrn.options import PifOptions
from stacrrn.pipeline.execution.parallel import Workers, imap_bounded, threads_of
from stacrrn.pipeline.execution.progress import Progress, no_progress
from stacrrn.pipeline.inputs.pif_options import PifSetup
from stacrrn.pipeline.inputs.plan import Plan
from stacrrn.pipeline.masks.pifs import candidate_pairs, prepare_pair_mask
from stacrrn.types import Box

U8 = NDArray[np.uint8]
NODATA = 255


@dataclass(frozen=True)
class MaskProduct:
    """One mask COG: what it covers, where it is, and how many of its valid pixels are usable."""

    name: str
    path: Path
    valid_pixels: int
    usable_pixels: int

    @property
    def usable_percent(self) -> float:
        """Usable share of the valid pixels, in percent."""
        return 100.0 * self.usable_pixels / max(self.valid_pixels, 1)


def _write(plan: Plan, name: str, box: Box, path: Path, values: Callable[[Box], U8]) -> MaskProduct:
    valid = usable = 0
    with cog_writer(path, plan.grid.window(box), 1, "uint8", NODATA, {"STACRRN_MASK": "1 usable, 0 masked"}) as out:
        for chunk in plan.chunks:
            part = chunk.intersect(box)
            if part.empty:
                continue
            data = values(part)
            valid += int((data != NODATA).sum())
            usable += int((data == 1).sum())
            out.write(part.shift(-box.row0, -box.col0), data[None])
    return MaskProduct(name, path, valid, usable)


def _code(valid: NDArray[np.bool_], usable: NDArray[np.bool_]) -> U8:
    return np.where(valid, np.where(usable, 1, 0), NODATA).astype(np.uint8)


def write_clear_mask(unmasked: Plan, masked: Plan, i: int, path: Path) -> MaskProduct:
    """Write image ``i``'s clear-sky mask over its footprint on the common grid.

    ``unmasked`` and ``masked`` are plans of the same inputs without and with cloud masks:
    a pixel is clear where ``masked`` keeps a pixel that ``unmasked`` has.
    """

    def values(part: Box) -> U8:
        (_, valid), (_, clear) = unmasked.read_chunk(part, [i])[i], masked.read_chunk(part, [i])[i]
        return _code(valid, valid & clear)

    return _write(masked, masked.names[i], masked.footprints[i], path, values)


def write_cloud_masks(
    unmasked: Plan, masked: Plan, out_dir: Path, workers: Workers = 1, progress: Progress = no_progress
) -> list[MaskProduct]:
    """Write ``<name>-clear.tif`` per image (see :func:`write_clear_mask`)."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def task(i: int) -> MaskProduct:
        return write_clear_mask(unmasked, masked, i, out_dir / f"{masked.names[i]}-clear.tif")

    products = []
    progress("masks", 0, len(masked.names))
    for done, product in enumerate(imap_bounded(task, range(len(masked.names)), workers), start=1):
        products.append(product)
        progress("masks", done, len(masked.names))
    return products


def write_pif_masks(
    plan: Plan, out_dir: Path, workers: Workers = 1, progress: Progress = no_progress
) -> tuple[list[MaskProduct], list[str]]:
    """Write ``pif-<a>__<b>.tif`` per pair of the plan's graph: its pseudo-invariant pixels.

    Returns
    -------
    list of MaskProduct, list of str
        The masks (``valid_pixels``: the pair's overlap) and warnings of the PIF selection.
    """
    if plan.pif is None:
        raise ValueError("the plan has no PIF selection")
    pair_mask, warnings = prepare_pair_mask(plan, plan.pif, workers, progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs = candidate_pairs(plan)

    def task(pair: tuple[int, int]) -> MaskProduct:
        i, j = pair

        def values(part: Box) -> U8:
            layers = plan.read_chunk(part, [i, j])
            (xi, vi), (xj, vj) = layers[i], layers[j]
            both = vi & vj
            keep = both if pair_mask is None or not both.any() else both & pair_mask(part, i, j, xi, xj)
            return _code(both, keep)

        name = f"{plan.names[i]}__{plan.names[j]}"
        overlap = plan.footprints[i].intersect(plan.footprints[j])
        return _write(plan, name, overlap, out_dir / f"pif-{name}.tif", values)

    products = []
    progress("pif masks", 0, len(pairs))
    for done, product in enumerate(imap_bounded(task, pairs, workers), start=1):
        products.append(product)
        progress("pif masks", done, len(pairs))
    return products, warnings


def local_cloud_mask(cloud_mask: str, band_names: Sequence[str] | None, masks: Mapping[str, str] | None) -> str:
    """The cloud test of local rasters' clear-sky masks: ``auto`` is ``spectral`` with band names, else ``none``.

    Parameters
    ----------
    cloud_mask
        One of :data:`~stacrrn.options.LOCAL_CLOUD_MASKS`.
    band_names
        ``eo:common_name`` of each band used (the spectral test needs blue and red).
    masks
        Mask rasters per input name (``{name: "path[:kind]"}``).

    Raises
    ------
    ParameterError
        If neither a cloud test nor a mask raster would mask anything.
    """
    chosen = ("spectral" if band_names else "none") if cloud_mask == "auto" else cloud_mask
    if chosen == "none" and not masks:
        raise ParameterError("nothing to mask: give --mask NAME=PATH[:KIND] or --cloud-mask spectral --band-names")
    return chosen


def mask_plans(
    source: Sequence[str | os.PathLike[str]] | Search | Sequence[pystac.Item],
    *,
    bands: Sequence[str] | None = None,
    cloud_mask: str = "auto",
    masks: Mapping[str, str] | None = None,
    band_names: Sequence[str] | None = None,
    reflectance: tuple[float, float] | None = None,
    pif: PifOptions | None = None,
    mode: str = "mosaic",
    neighbours: int | None = None,
    crs: str | None = None,
    resolution: float | None = None,
    workers: Workers = 2,
) -> tuple[Plan, Plan]:
    """Plans of local rasters or STAC items without and with their cloud masks (and PIF selection).

    Parameters
    ----------
    source
        Local raster paths, a STAC search, or items.
    bands
        Local rasters: 1-based band numbers as strings; STAC: asset keys / common names.
    cloud_mask, masks, band_names, reflectance
        As for :func:`stacrrn.match` (local) or :func:`stacrrn.run` (STAC; ``masks`` unused).
    pif
        PIF selection carried by the masked plan.
    mode, neighbours, crs, resolution, workers
        Pair graph, common grid and concurrency.

    Returns
    -------
    Plan, Plan
        The unmasked and the masked plan of the same inputs and grid.
    """
    configure_cloud()
    items = stac_items_of(source)
    if items is not None:
        from stacrrn.pipeline.inputs.stac_inputs import open_assets, spectral_bands
        from stacrrn.pipeline.loading.stac_plan import make_stac_plan

        plain = make_stac_plan(
            open_assets(items, bands, threads_of(workers), "none"), crs, resolution, mode=mode, neighbours=neighbours
        )
        inputs = open_assets(items, bands, threads_of(workers), cloud_mask)
        masked = make_stac_plan(
            inputs, crs, resolution, mode=mode, neighbours=neighbours, cloud_mask=cloud_mask, reflectance=reflectance
        )
        spectral = spectral_bands(inputs, reflectance)
    else:
        from stacrrn.options import LOCAL_CLOUD_MASKS
        from stacrrn.pipeline.inputs.plan import band_numbers, make_plan
        from stacrrn.pipeline.inputs.spectral import SpectralBands
        from stacrrn.pipeline.masks.cloud_masks import with_local_masks

        if cloud_mask not in LOCAL_CLOUD_MASKS:
            raise ParameterError(
                f"--cloud-mask {cloud_mask} needs STAC items; for local rasters give --mask NAME=PATH[:KIND] "
                "or --cloud-mask spectral"
            )
        local = "none" if cloud_mask == "auto" else cloud_mask
        paths = [os.fspath(p) for p in source if not isinstance(p, pystac.Item)]  # type: ignore[union-attr]
        plain = make_plan(paths, band_numbers(bands), crs, resolution)
        spectral = SpectralBands.named(band_names, [str(b) for b in plain.bands], reflectance)
        masked = with_local_masks(plain, local, masks or {}, spectral, None)
    if pif is not None:
        setup = PifSetup(pif, spectral)
        setup.check()
        masked = replace(masked, pif=setup)
    return plain, masked
