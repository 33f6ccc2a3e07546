"""Cloud masks in pass 1: wrap a chunk reader so that cloudy pixels become invalid.

From the items' own quality assets (read on the common grid, nearest resampling) or from a
spectral test on the values the reader already returned (no extra reads).
"""

from __future__ import annotations

import numpy as np

from stacrrn.core.masks import clear_from_qa, spectral_clear
from stacrrn.core.statistics import Layer
from stacrrn.errors import InputError
from stacrrn.io.raster import read_on_grid
from stacrrn.pipeline.plan import ChunkReader
from stacrrn.pipeline.stac_inputs import StacInputs, band_common_names, reflectance_scaling
from stacrrn.types import Box, Grid


def with_quality_masks(reader: ChunkReader, inputs: StacInputs, grid: Grid) -> ChunkReader:
    """Also mark pixels invalid where the item's quality asset flags cloud, shadow, snow, fill..."""
    if not any(inputs.qa):
        return reader

    def read_chunk(box: Box, images: list[int]) -> dict[int, Layer]:
        layers = reader(box, images)
        for i, (values, valid) in layers.items():
            qa = inputs.qa[i]
            if qa is not None:
                flags, inside = read_on_grid(qa.info, grid, box, [1])  # nearest: flags are not numbers
                layers[i] = (values, valid & inside & clear_from_qa(qa.kind, flags[0].astype(np.int64)))
        return layers

    return read_chunk


def with_spectral_masks(
    reader: ChunkReader, inputs: StacInputs, reflectance: tuple[float, float] | None
) -> ChunkReader:
    """Also mark pixels invalid where the spectral cloud test finds cloud (blue, red and optional green)."""
    names = band_common_names(inputs)
    missing = [n for n in ("blue", "red") if n not in names]
    if missing:
        raise InputError(
            f"--cloud-mask spectral needs bands with eo:common_name {' and '.join(missing)} among --assets "
            f"(selected: {', '.join(inputs.selection.labels)})"
        )
    blue, red = names.index("blue"), names.index("red")
    green = names.index("green") if "green" in names else None
    scaling = reflectance or reflectance_scaling(inputs, blue)
    if scaling is None:
        raise InputError(
            "--cloud-mask spectral needs reflectance: the blue asset has no raster:bands scale/offset; "
            "pass --reflectance-scale (and --reflectance-offset)"
        )
    scale, offset = scaling

    def read_chunk(box: Box, images: list[int]) -> dict[int, Layer]:
        layers = reader(box, images)
        for i, (v, valid) in layers.items():
            rho = v * scale + offset
            clear = spectral_clear(rho[blue], rho[red], green=None if green is None else rho[green])
            layers[i] = (v, valid & clear)
        return layers

    return read_chunk
