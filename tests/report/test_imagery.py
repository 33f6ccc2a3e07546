"""Pictures of the imagery: bands on R, G, B by their common names, and the whole mosaic before and after."""

import numpy as np
import pytest
import rasterio
from matplotlib.image import AxesImage

from stacrrn.pipeline.match import match
from stacrrn.report import (
    BandSource,
    canvas_of,
    load_run,
    mosaic_figure,
    quicklook_figure,
    read_mosaic,
    rgb_bands,
    rgb_caption,
)
from stacrrn.report.mosaic import read_shape
from stacrrn.report.run_outputs import _descriptions
from stacrrn.types import Grid
from tests.conftest import BAHAMAS, S2_TILES, write_raster
from tests.report.conftest import BANDS, TILES

NAMES = ("green", "blue", "red")  # common names in a non-RGB order


def patterns(rows, cols):
    """Per common name, a pattern of the pixel's column, row or an 8-pixel checkerboard (absolute coordinates)."""
    row, col = np.mgrid[0:rows, 0:cols].astype(float)
    checker = ((row // 8 + col // 8) % 2).astype(float)
    return {"red": 1000 + 10 * col, "green": 1000 + 10 * row, "blue": 1000 + 500 * checker}


@pytest.fixture(scope="module")
def named_run(tmp_path_factory):
    """Two overlapping 3-band rasters whose band descriptions are green, blue, red; a global match of them."""
    tmp = tmp_path_factory.mktemp("named")
    truth = patterns(64, 120)
    paths = []
    for k, (col0, width) in enumerate([(0, 80), (40, 80)]):
        data = np.stack([truth[n][:, col0 : col0 + width] for n in NAMES]).astype("float32")
        if k:
            data = 1.1 * data + 5  # a gain and offset for the match to undo
        transform = rasterio.Affine(10, 0, 500000 + 10 * col0, 0, -10, 4500000)
        path = write_raster(tmp / f"n{k}.tif", data, transform)
        with rasterio.open(path, "r+") as dst:
            dst.descriptions = NAMES
        paths.append(path)
    match(paths, tmp / "out", references=["n0"], method="global")
    return load_run(tmp / "out")


def shown(ax):
    """The RGBA array an axes shows."""
    (image,) = [a for a in ax.get_children() if isinstance(a, AxesImage)]
    return np.asarray(image.get_array())


def channel_sources(rgba, rows, cols):
    """Which pattern each of R, G, B follows (by correlation over the opaque pixels)."""
    opaque = rgba[..., 3] > 0
    truth = patterns(rows, cols)
    out = []
    for c in range(3):
        scores = {n: abs(np.corrcoef(rgba[..., c][opaque], truth[n][opaque])[0, 1]) for n in truth}
        out.append(max(scores, key=lambda n: scores[n]))
    return out


def test_bands_go_to_red_green_and_blue_by_their_common_names(named_run):
    assert named_run.band_names == NAMES
    assert rgb_bands(named_run) == [2, 0, 1]
    assert rgb_caption(named_run).endswith("(by their common names)")
    fig = quicklook_figure(named_run)
    before, after = fig.get_axes()[:2]
    for ax in (before, after):
        assert channel_sources(shown(ax)[..., :], 64, 80) == ["red", "green", "blue"]


def test_the_mosaic_follows_the_same_order_and_an_explicit_choice_wins(named_run):
    fig = mosaic_figure(named_run, size=60)  # the 120 x 64 px mosaic decimated to 60 x 32
    after = shown(fig.get_axes()[1])
    assert after.shape[:2] == (32, 60)
    truth = {n: v[::2, ::2] for n, v in patterns(64, 120).items()}
    opaque = after[..., 3] > 0
    assert opaque.all()  # both images painted, nothing left empty
    for c, name in enumerate(("red", "green", "blue")):
        assert np.corrcoef(after[..., c][opaque], truth[name][opaque])[0, 1] > 0.95
    fig = quicklook_figure(named_run, rgb=["1", "2", "3"])  # positions: green, blue, red on R, G, B
    assert channel_sources(shown(fig.get_axes()[1]), 64, 80) == ["green", "blue", "red"]
    assert rgb_caption(named_run, ["1", "2", "3"]) == "R: 1 (green), G: 2 (blue), B: 3 (red) (as asked)"


@pytest.mark.skipif(not BAHAMAS, reason="../shared/data (real sample imagery) is not present")
def test_band_names_from_colour_interpretation_and_no_placeholder_descriptions():
    assert _descriptions(tuple(BandSource(str(BAHAMAS[0]), b) for b in (1, 2, 3))) == ("red", "green", "blue")
    assert _descriptions((BandSource(str(S2_TILES[0]), 1), BandSource(str(S2_TILES[0]), 2))) == (None, None)


def test_the_mosaic_after_matches_the_undistorted_tiles_far_better_than_before(match_run):
    """Real tiles with known gains, offsets and gradients: the corrected mosaic is close to the truth's."""
    outputs = load_run(match_run.out)
    canvas = canvas_of(outputs.model.grid, 200)
    bands = rgb_bands(outputs)
    truth = read_mosaic([[BandSource(str(S2_TILES[k]), BANDS[b]) for b in bands] for k in TILES], canvas)
    before = read_mosaic([[im.before[b] for b in bands] for im in outputs.images], canvas)
    after = read_mosaic([[im.after[b] for b in bands] for im in outputs.images], canvas)
    assert truth.shape == before.shape == after.shape == (3, canvas.height, canvas.width)
    assert max(canvas.width, canvas.height) == 200 and np.isfinite(truth).mean() > 0.95

    def error(mosaic):
        return float(np.sqrt(np.nanmean((mosaic - truth) ** 2)))

    assert error(after) < 0.35 * error(before)  # gains and offsets undone; the gradients only in part
    fig = mosaic_figure(outputs, size=200)
    assert [len(shown(ax)) for ax in fig.get_axes()] == [canvas.height] * 2


def test_the_mosaic_reads_at_the_canvas_resolution(tmp_path):
    path = write_raster(tmp_path / "big.tif", np.ones((1, 1000, 1500), "uint8"),
                        rasterio.Affine(10, 0, 500000, 0, -10, 4500000), tiled=True)  # fmt: skip
    with rasterio.open(path, "r+") as dst:
        dst.build_overviews([2, 4, 8])
    grid = Grid("EPSG:32633", (10.0, 0.0, 500000.0, 0.0, -10.0, 4500000.0), 3000, 2000)  # twice the raster's extent
    canvas = canvas_of(grid, 300)
    assert (canvas.width, canvas.height) == (300, 200) and canvas.resolution == (100.0, 100.0)
    with rasterio.open(path) as src:
        assert read_shape(src, canvas) == (100, 150)  # a tenth of the pixels each way, not the full raster
    mosaic = read_mosaic([[BandSource(str(path), 1)]], canvas)
    assert mosaic is not None and np.isfinite(mosaic[0, :100, :150]).all() and np.isnan(mosaic[0, 100:]).all()
