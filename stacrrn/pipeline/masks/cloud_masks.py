"""Cloud masks in pass 1: wrap a chunk reader so that cloudy pixels become invalid.

From the items' own quality assets or local mask rasters (read on the common grid, nearest
resampling) or from a spectral test on the values the reader already returned (no extra
reads); ``s2cloudless`` lives in :mod:`stacrrn.pipeline.masks.s2cloudless_masks`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
from scipy import ndimage

from stacrrn.core.masks import QA_DECODERS, SpectralThresholds, clear_from_qa, spectral_clear
from stacrrn.core.statistics import Layer
from stacrrn.errors import ParameterError
from stacrrn.io.raster import open_raster, read_on_grid
from stacrrn.io.storage import object_identity
from stacrrn.options import PifOptions
from stacrrn.pipeline.inputs.pif_options import PifSetup
from stacrrn.pipeline.inputs.plan import ChunkReader, Plan
from stacrrn.pipeline.inputs.spectral import SpectralBands
from stacrrn.pipeline.inputs.stac_inputs import QaAsset
from stacrrn.types import Box, Grid


def with_quality_masks(reader: ChunkReader, quality: Sequence[QaAsset | None], grid: Grid, pad: int = 0) -> ChunkReader:
    """Also mark pixels invalid where the image's quality raster flags cloud, shadow, snow, fill...

    Quality rasters may lie on another grid or CRS: they are resampled (nearest) to the
    common grid; pixels they do not cover are not used. With ``pad``, the flagged pixels grow
    by that many pixels (a square), read across chunk borders so the mask does not depend on
    the chunking: bands coarser than the grid, resampled bilinearly, carry a cloud's
    brightness up to one of their pixels beyond it (see :func:`coarse_band_pad`).
    """
    if not any(quality):
        return reader

    def read_chunk(box: Box, images: list[int]) -> dict[int, Layer]:
        layers = reader(box, images)
        padded = box.grow(pad, grid.box)
        inner = box.shift(-padded.row0, -padded.col0)
        for i, (values, valid) in layers.items():
            qa = quality[i]
            if qa is not None:
                flags, inside = read_on_grid(qa.info, grid, padded, [1])  # nearest: flags are not numbers
                clear = clear_from_qa(qa.kind, flags[0].astype(np.int64))
                if pad:
                    clear = ~ndimage.binary_dilation(~clear, np.ones((2 * pad + 1, 2 * pad + 1), bool))
                usable = (inside & clear)[inner.row0 : inner.row1, inner.col0 : inner.col1]
                layers[i] = (values, valid & usable)
        return layers

    return read_chunk


def coarse_band_pad(resolutions: Sequence[float], grid: Grid) -> int:
    """Pixels to grow quality masks by: the coarsest band's pixel in grid pixels (0 if none is coarser)."""
    factor = max(resolutions, default=0.0) / max(grid.resolution)
    return math.ceil(factor - 1e-9) if factor > 1 + 1e-9 else 0


def with_spectral_masks(reader: ChunkReader, bands: SpectralBands, grid: Grid) -> ChunkReader:
    """Also mark pixels invalid where the spectral cloud test finds cloud (blue, red and optional green).

    Each chunk is read with a margin of the test's buffer, so that the buffer around a cloud
    reaches across chunk borders and the mask does not depend on the chunking.
    """
    purpose = "--cloud-mask spectral"
    bands.check(("blue", "red"), purpose)
    blue, red = bands.find("blue", purpose), bands.find("red", purpose)
    green = bands.find("green", purpose) if "green" in bands.names else None
    pad = SpectralThresholds().buffer

    def read_chunk(box: Box, images: list[int]) -> dict[int, Layer]:
        padded = Box(
            max(0, box.row0 - pad),
            max(0, box.col0 - pad),
            min(grid.height, box.row1 + pad),
            min(grid.width, box.col1 + pad),
        )
        inner = box.shift(-padded.row0, -padded.col0)
        rows, cols = slice(inner.row0, inner.row1), slice(inner.col0, inner.col1)
        layers = {}
        for i, (v, valid) in reader(padded, images).items():
            rho = bands.reflectance(v, purpose)
            clear = spectral_clear(rho[blue], rho[red], green=None if green is None else rho[green])
            layers[i] = (v[:, rows, cols], valid[rows, cols] & clear[rows, cols])
        return layers

    return read_chunk


def mask_files(names: Sequence[str], masks: Mapping[str, str]) -> list[QaAsset | None]:
    """Mask rasters given per image as ``{name: "path[:kind]"}`` (kind in ``QA_DECODERS``, default ``clear``).

    Raises
    ------
    ParameterError
        For a name that is not an input or an unknown kind.
    UnreadableRasterError
        For an unreadable mask raster.
    """
    out: list[QaAsset | None] = [None] * len(names)
    for name, spec in masks.items():
        if name not in names:
            raise ParameterError(f"--mask {name}=...: {name!r} is not one of the inputs ({', '.join(names)})")
        head, sep, tail = spec.rpartition(":")
        path, kind = (head, tail) if sep and head and "/" not in tail and "." not in tail else (spec, "clear")
        if kind not in QA_DECODERS:
            raise ParameterError(f"--mask {name}={spec}: unknown kind; choose one of {', '.join(QA_DECODERS)}")
        out[names.index(name)] = QaAsset(path, kind, open_raster(path))
    return out


def with_local_masks(
    plan: Plan, cloud_mask: str, masks: Mapping[str, str], spectral: SpectralBands, pif: PifOptions | None
) -> Plan:
    """The plan with mask rasters, the spectral cloud test and PIF selection in its reader and identity."""
    quality = mask_files(plan.names, masks)
    reader = with_quality_masks(plan.read_chunk, quality, plan.grid)
    if cloud_mask == "spectral":
        reader = with_spectral_masks(reader, spectral, plan.grid)
    identity = [
        *plan.identity,
        {"cloud_mask": cloud_mask, "reflectance": spectral.scaling, "bands": spectral.names},
        [None if q is None else [q.kind, object_identity(q.key)] for q in quality],
    ]
    setup = None if pif is None else PifSetup(pif, spectral)
    if setup is not None:
        setup.check()
    return replace(plan, read_chunk=reader, identity=identity, pif=setup)
