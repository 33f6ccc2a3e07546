"""A real cloudy time series: Landsat 8/9 over Hawai'i, five dates, two with cumulus and shadows.

Hand-marked boxes (tests/data/hawaii_boxes.json, marked on quick-looks and checked against
the clear dates) give ground truth for the masks: cloud, shadow and clear ground per date.
The radiometric truth between dates is unknown (L1 DN, real atmosphere), so agreement is
judged on the hand-marked clear boxes, stable surfaces from dark ocean to bright roofs,
where a wrong gain or offset shows directly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from stacrrn.core.masks import spectral_clear
from stacrrn.core.pif import fit_irmad, invariant_cutoff, irmad_invariant
from stacrrn.options import PifOptions
from stacrrn.pipeline.match import match
from tests.conftest import SHARED, needs_shared

FOLDER = SHARED / "landsat_hawaii_timeseries"
BOXES = json.loads((Path(__file__).parents[1] / "data" / "hawaii_boxes.json").read_text())["boxes"]
NAMES = ["coastal", "blue", "green", "red", "nir08", "swir16", "swir22"]  # OLI bands 1-7
REFLECTANCE = (2e-5, -0.1)  # Landsat Collection 2 L1 TOA reflectance scaling
REFERENCE = "Landsat_20240302"
CLOUDY = ("Landsat_20220313", "Landsat_20250422")


def read(name: str) -> np.ndarray:
    with rasterio.open(FOLDER / f"{name}.tif") as src:
        return src.read().astype(np.float64)


def in_boxes(name: str, kind: str, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for r0, c0, r1, c1 in BOXES[name].get(kind, []):
        mask[r0:r1, c0:c1] = True
    return mask


@needs_shared
@pytest.mark.parametrize("name", CLOUDY)
def test_masks_cover_the_hand_marked_clouds_and_shadows_and_spare_clear_ground(name):
    x, ref = read(name), read(REFERENCE)
    rho = x * REFLECTANCE[0] + REFLECTANCE[1]
    clear = spectral_clear(rho[1], rho[3], green=rho[2])
    cloud, shadow, ground = (in_boxes(name, k, clear.shape) for k in ("cloud", "shadow", "clear"))
    valid = (x > 0).all(axis=0) & (ref > 0).all(axis=0)
    model = fit_irmad(ref[:, valid], x[:, valid])  # IR-MAD alone, without the cloud test
    options = PifOptions()
    cutoff = invariant_cutoff(model, ref[:, valid], x[:, valid], options.threshold, options.min_share)
    invariant = irmad_invariant(model, ref, x, cutoff) & valid
    found = {
        "cloud test: cloud": (~clear[cloud]).mean(),
        "cloud test: clear ground": (~clear[ground]).mean(),
        "IR-MAD: cloud not invariant": (~invariant[cloud]).mean(),
        "IR-MAD: shadow not invariant": (~invariant[shadow]).mean(),
        "IR-MAD: whole scene invariant": invariant[valid].mean(),
    }
    print(name, {k: round(float(v), 3) for k, v in found.items()})
    assert found["cloud test: cloud"] == 1.0  # every hand-marked cloud pixel
    assert found["cloud test: clear ground"] == 0.0
    assert found["IR-MAD: cloud not invariant"] == 1.0
    assert found["IR-MAD: shadow not invariant"] == 1.0  # the shadows the cloud test cannot see
    assert found["IR-MAD: whole scene invariant"] > 0.005  # still hundreds of PIFs per pair


def box_rmse(out: Path, name: str) -> np.ndarray:
    y, z = read_path(out / f"{name}.tif"), read(REFERENCE)
    boxes = in_boxes(name, "clear", y.shape[1:])
    return np.sqrt(((y[:, boxes] - z[:, boxes]) ** 2).mean(axis=1))


def read_path(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read().astype(np.float64)


@needs_shared
def test_masks_and_pifs_bring_the_cloudy_dates_to_the_reference(tmp_path):
    paths = sorted(FOLDER.glob("Landsat_*.tif"))
    common = dict(references=[REFERENCE], method="global", band_names=NAMES, reflectance=REFLECTANCE)
    raw = match(paths, tmp_path / "raw", **common)
    match(paths, tmp_path / "masked", cloud_mask="spectral", pif=PifOptions.parse(["imad"]), **common)
    print("RMSE to the reference on hand-marked clear boxes (DN), bands 1-7: without -> with masks and PIFs")
    table = {}
    for name in (p.stem for p in paths if p.stem != REFERENCE):
        table[name] = box_rmse(tmp_path / "raw", name), box_rmse(tmp_path / "masked", name)
        print(f"  {name}: {np.round(table[name][0]).astype(int)} -> {np.round(table[name][1]).astype(int)}")
    for name in CLOUDY:
        before, after = table[name]
        assert np.all(after < before), name  # every band of both cloudy dates
        assert after.mean() < 0.7 * before.mean()
    gains = dict(zip(raw.model.images, raw.model.global_fit.gains, strict=True))
    cloudy_gain = gains[next(im for im in raw.model.images if im.name == CLOUDY[0])]
    assert cloudy_gain.min() < 0.5  # unmasked, the clouds collapse the 2022 gains
