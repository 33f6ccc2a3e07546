"""``--cloud-mask s2cloudless`` on Sentinel-2 "L1C" STAC items made from real tiles with injected clouds.

Four overlapping items are cut from a 2 x 2 mosaic of the Aberystwyth tiles (turned into TOA-like
reflectance of the detector's ten bands by :func:`tests.core.test_s2cloudless.toa_like`) and laid
out like Earth Search's ``sentinel-2-l1c``: one single-band COG per band, keyed by name, at the
bands' native 10, 20 or 60 m, digital numbers = reflectance x 10000 (item S3 as processing
baseline 04.00: + 1000, with ``raster:bands`` scale 1e-4 and offset -0.1). Blue, red and nir,
the bands normalized, carry a known gain per item; items S1 and S2 carry thick clouds over
their overlaps with the others, which bias an unmasked model.
"""

from __future__ import annotations

import copy
import io
import uuid

import numpy as np
import pytest
import rasterio
import s3fs

from stacrrn.core.s2cloudless import S2CLOUDLESS_BANDS
from stacrrn.errors import InputError
from stacrrn.io.stac import Search, search_items
from stacrrn.pipeline.inputs.stac_inputs import open_assets
from stacrrn.pipeline.loading.stac_plan import make_stac_plan
from stacrrn.pipeline.outputs.catalog import catalog_rasters
from stacrrn.pipeline.passes.statistics import compute_statistics
from stacrrn.pipeline.run import run
from stacrrn.services import RustacAPI
from stacrrn.types import Box
from tests.conftest import S2_TILES, needs_shared, write_raster
from tests.core.test_s2cloudless import inject_clouds, toa_like

pytestmark = needs_shared

MOSAIC_TILES = (0, 1, 4, 5)  # a 2 x 2 block of overlapping tiles: 522 x 521 pixels at 10 m
SIZE, STEP = 360, 156  # items of 360 x 360 pixels at (0 | 156, 0 | 156): overlaps 204 pixels wide
ORIGINS = ((0, 0), (0, STEP), (STEP, 0), (STEP, STEP))
CLOUDY = (1, 2)
NORMALIZED = ("blue", "red", "nir")
# Blue gains stay at or below 1: the detector is absolute, and on this stand-in a blue band 5 %
# brighter makes it flag 25 % of a clear item (12 % brighter: 94 %), which costs pixels, not bias.
GAINS = np.array([[1.0, 1.0, 1.0], [0.94, 1.06, 0.92], [0.97, 0.93, 1.08], [0.92, 1.08, 1.05]])
OFFSETS = np.array([0.0, 20.0, -30.0, 10.0])  # digital numbers, on the normalized bands
BASELINE_04 = 3  # this item's numbers carry the +1000 of processing baseline 04.00
NAMES = S2CLOUDLESS_BANDS  # asset keys as in Earth Search's sentinel-2-l1c: coastal, blue, ... swir22
RESOLUTIONS = {10: ("B02", "B04", "B08"), 20: ("B05", "B8A", "B11", "B12"), 60: ("B01", "B09", "B10")}


def aber_mosaic() -> tuple[np.ndarray, rasterio.Affine]:
    """The detector's ten bands, TOA-like, over four adjacent tiles (identical in their overlaps)."""
    transforms = [rasterio.open(S2_TILES[k]).transform for k in MOSAIC_TILES]
    x0, y0 = transforms[0].c, transforms[0].f
    placed = []
    for k, t in zip(MOSAIC_TILES, transforms, strict=True):
        toa = toa_like(S2_TILES[k])
        placed.append((round((y0 - t.f) / 10), round((t.c - x0) / 10), toa))
    rows = max(r + toa.shape[1] for r, _, toa in placed)
    cols = max(c + toa.shape[2] for _, c, toa in placed)
    mosaic = np.zeros((len(S2CLOUDLESS_BANDS), rows, cols), np.float32)
    for r, c, toa in placed:
        mosaic[:, r : r + toa.shape[1], c : c + toa.shape[2]] = toa
    return mosaic, transforms[0]


def block_mean(data: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor x factor`` blocks: a coarser band of the same scene."""
    bands, rows, cols = data.shape
    return data.reshape(bands, rows // factor, factor, cols // factor, factor).mean(axis=(2, 4))


def l1c_items(tmp_path, bucket: str) -> tuple[dict, list[dict], list[np.ndarray]]:
    """Publish the four items; return the collection, the items and each item's cloud opacity."""
    mosaic, origin = aber_mosaic()
    band_index = {band: k for k, band in enumerate(S2CLOUDLESS_BANDS)}
    paths: dict[int, list] = {res: [] for res in RESOLUTIONS}
    opacities = []
    for k, (row, col) in enumerate(ORIGINS):
        toa = mosaic[:, row : row + SIZE, col : col + SIZE]
        alpha = np.zeros(toa.shape[1:], np.float32)
        if k in CLOUDY:
            toa, alpha, _ = inject_clouds(toa)
        opacities.append(alpha)
        dn = toa.astype(np.float64) * 10000.0
        for g, name in enumerate(NORMALIZED):
            b = band_index[next(band for band, n in NAMES.items() if n == name)]
            dn[b] = GAINS[k, g] * dn[b] + OFFSETS[k]
        dn += 1000.0 if k == BASELINE_04 else 0.0
        for res, bands in RESOLUTIONS.items():
            data = block_mean(dn[[band_index[b] for b in bands]], res // 10)
            t = origin @ rasterio.Affine.translation(col, row) @ rasterio.Affine.scale(res // 10)
            out = np.clip(np.rint(data), 1, 65535).astype(np.uint16)
            folder = tmp_path / f"{res}m"
            folder.mkdir(exist_ok=True)
            paths[res].append(write_raster(folder / f"S{k}.tif", out, t, 0, crs="EPSG:27700"))
    catalogs = {
        res: catalog_rasters(
            paths[res],
            f"s3://{bucket}/in{res}",
            "sentinel-2-l1c",
            band_names=[NAMES[b] for b in bands],
            split_bands=True,
        )
        for res, bands in RESOLUTIONS.items()
    }
    collection, items = catalogs[10]
    for k, item in enumerate(items):
        for res in (20, 60):
            item["assets"] |= catalogs[res][1][k]["assets"]
        if k == BASELINE_04:
            for asset in item["assets"].values():
                asset["raster:bands"] = [asset.get("raster:bands", [{}])[0] | {"scale": 1e-4, "offset": -0.1}]
    return collection, items, opacities


@pytest.fixture(scope="module")
def published(s3, tmp_path_factory):
    """The items, published once for this module's tests in a bucket of their own."""
    bucket = f"t-s2cloudless-run-{uuid.uuid4().hex[:6]}"
    s3.create_bucket(bucket)
    collection, items, opacities = l1c_items(tmp_path_factory.mktemp("l1c"), bucket)
    assert all(len(it["assets"]) == len(S2CLOUDLESS_BANDS) for it in items)
    return bucket, collection, items, opacities


def test_s2cloudless_keeps_clouds_out_of_the_model(published):
    bucket, collection, items, opacities = published
    cloudy = [float((a >= 0.5).mean()) for a in opacities]
    with RustacAPI(collection, items) as api:
        search = Search(stac=api.url, collections=("sentinel-2-l1c",))
        common = {"assets": list(NORMALIZED), "references": ["S0"], "method": "global"}
        masked = run(search, f"s3://{bucket}/masked", cloud_mask="s2cloudless", **common)
        unmasked = run(search, f"s3://{bucket}/raw", cloud_mask="none", **common)
        # pass 1 alone, on two chunkings: one chunk, and 100-pixel chunks that cut 60 m pixels
        found = search_items(search)
        inputs = open_assets(found, list(NORMALIZED), 4, "s2cloudless")
        plans = [make_stac_plan(inputs, chunk_size=chunk, cloud_mask="s2cloudless") for chunk in (1024, 100)]
        counts = []
        for plan in plans:
            stats = compute_statistics(plan, workers=2)
            counts.append(([m.n for m in stats.images], dict(stats.overlaps), len(plan.chunks)))
        assert plans[0].chunks == [Box(0, 0, STEP + SIZE, STEP + SIZE)]
        layers = plans[0].read_chunk(plans[0].chunks[0], list(CLOUDY))  # the items' pass-1 validity
    missed = []
    for k in CLOUDY:
        row, col = ORIGINS[k]
        valid = layers[k][1][row : row + SIZE, col : col + SIZE]
        missed.append(int((valid & (opacities[k] > 0.01)).sum()))
    err_masked = np.abs(masked.model.global_fit.gains * GAINS - 1).max()
    err_unmasked = np.abs(unmasked.model.global_fit.gains * GAINS - 1).max()
    fs = s3fs.S3FileSystem()
    n_masked = np.load(io.BytesIO(fs.cat(f"{bucket}/masked/stacrrn-statistics.npz")))["images.n"].tolist()
    n_raw = np.load(io.BytesIO(fs.cat(f"{bucket}/raw/stacrrn-statistics.npz")))["images.n"].tolist()
    kept = [m / r for m, r in zip(n_masked, n_raw, strict=True)]
    print(
        f"s2cloudless: cloud (opacity >= 0.5) {np.round(cloudy, 3)} of each item; pass-1 pixels kept "
        f"{np.round(kept, 3)}; max gain error masked {err_masked:.2e}, unmasked {err_unmasked:.2e}; "
        f"chunkings {counts[0][2]} and {counts[1][2]} chunks: n {counts[0][0]} and {counts[1][0]}; "
        f"cloud pixels (opacity > 0.01) left in pass 1: {missed}"
    )
    assert missed == [0, 0]  # cloud edges included: the 60 m dilation covers the 80 m taper
    assert err_masked < 0.01
    assert err_unmasked > 0.3  # measured 0.88: the clouds in the overlaps drive the unmasked fit
    assert kept[0] > 0.95 and kept[3] > 0.95  # clear items lose only the detector's false alarms
    assert all(kept[k] < 1 - cloudy[k] for k in CLOUDY)  # every cloudy item loses at least its clouds
    assert n_masked == counts[0][0]
    assert counts[0][:2] == counts[1][:2]  # the mask, hence pass 1, is the same for any chunking
    cloudy_item = masked.items[CLOUDY[0]]
    assert cloudy_item["properties"]["rrn:cloud_mask"]["kind"] == "s2cloudless"
    assert 0 < cloudy_item["properties"]["rrn:cloud_mask"]["clear_percent"] < 100 * (1 - cloudy[CLOUDY[0]])
    assert "clear-mask" in cloudy_item["assets"]


def test_an_item_without_the_cirrus_band_is_a_one_line_error(published):
    bucket, collection, items, _ = published
    items = copy.deepcopy(items)
    del items[2]["assets"]["cirrus"]
    with RustacAPI(collection, items) as api, pytest.raises(InputError) as info:
        run(Search(stac=api.url), f"s3://{bucket}/no-cirrus", assets=list(NORMALIZED), cloud_mask="s2cloudless")
    message = str(info.value)
    print(message)
    assert "\n" not in message
    assert message.startswith(
        "item S2 lacks band(s) B10 (cirrus): --cloud-mask s2cloudless needs Sentinel-2 L1C items with bands "
        "B01 B02 B04 B05 B08 B8A B09 B10 B11 B12 "
    )
