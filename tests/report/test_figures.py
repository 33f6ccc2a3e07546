import dataclasses
import io

import matplotlib.image
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from matplotlib.patches import Polygon

from stacrrn.report import (
    BeforeAfter,
    BlockMap,
    GainMosaic,
    block_map_figure,
    block_maps,
    figure_png,
    gain_mosaic,
    load_run,
    local_gain_figure,
    local_gain_maps,
    overlap_figure,
    overlap_graph,
    profile_figure,
    quicklook_figure,
    quicklooks,
    spectral_profiles,
)
from stacrrn.report.figures import GAIN_SCALE_FLOOR, departure, node_positions, stretch_limits, to_rgba
from stacrrn.report.rasters import NO_CORRECTION, field_maps
from stacrrn.report.run_figures import block_map_band


def images_of(ax):
    return [a for a in ax.get_children() if isinstance(a, AxesImage)]


def test_spectral_profiles_two_panels_sharing_y_with_a_line_per_image():
    rng = np.random.default_rng(1)
    before, after = rng.uniform(500, 3000, (5, 4)), rng.uniform(500, 3000, (5, 4))
    before[2] = np.nan  # an image whose input is unknown keeps its line
    fig = spectral_profiles([f"i{k}" for k in range(5)], before, after, ["b", "g", "r", "n"], references=[0])
    axes = fig.get_axes()
    assert len(axes) == 2 and axes[0].get_shared_y_axes().joined(axes[0], axes[1])
    for ax, values in zip(axes, (before, after), strict=True):
        lines = [c for c in ax.get_lines() if isinstance(c, Line2D)]
        assert len(lines) == 5
        np.testing.assert_array_equal(lines[3].get_ydata(), values[3])
    assert axes[0].get_lines()[0].get_linewidth() > axes[0].get_lines()[1].get_linewidth()  # the reference


def test_profiles_from_previews_when_the_model_has_no_means(match_run):
    outputs = load_run(match_run.out)
    quality = {k: v for k, v in outputs.model.quality.items() if k != "images"}  # a model without mean_before/after
    outputs = dataclasses.replace(outputs, model=dataclasses.replace(outputs.model, quality=quality))
    fig = profile_figure(outputs)
    before, after = (np.array([ln.get_ydata() for ln in ax.get_lines()]) for ax in fig.get_axes())
    assert before.shape == after.shape == (4, 4)
    truth = np.array([t.reshape(4, -1).mean(axis=1) for t in match_run.truths])
    # decimated previews of the corrected tiles are much closer to the undistorted tiles' means
    assert np.abs(after / truth - 1).mean() < 0.35 * np.abs(before / truth - 1).mean()


def test_overlap_graph_one_edge_per_overlapping_pair_and_a_footprint_per_image(match_run):
    outputs = load_run(match_run.out)
    fig = overlap_figure(outputs)
    (ax, *_) = fig.get_axes()
    pairs = [p for p in outputs.model.quality["pairs"] if p["overlap_pixels"] > 0]
    assert len(ax.get_lines()) == len(pairs) == 6  # a 2x2 block of tiles: every pair overlaps
    assert sum(isinstance(p, Polygon) for p in ax.patches) == 4
    widths = sorted(ln.get_linewidth() for ln in ax.get_lines())
    assert widths[0] < widths[-1]  # diagonal neighbours share fewer pixels than side neighbours


def test_overlap_graph_marks_unused_pairs_isolated_images_and_spreads_a_time_series():
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]], float)
    fig = overlap_graph(["a", "b", "c", "d"], [square, square, square, None], [(0, 1, 500), (1, 2, 0)], [0], [3])
    ax = fig.get_axes()[0]
    assert len(ax.get_lines()) == 2 and ax.get_lines()[1].get_linestyle() == "--"
    nodes = node_positions([square, square, square, None])
    assert len({tuple(np.round(n, 6)) for n in nodes}) == 4  # same ground, distinct nodes
    assert np.allclose(nodes[:3].mean(axis=0), [5, 5])


def test_block_maps_draw_each_corrected_field_on_its_own_extent_plus_the_reference(match_run):
    outputs = load_run(match_run.out)
    k = block_map_band(outputs)
    fields = [f for f in field_maps(outputs.model, k) if departure(f.values) > NO_CORRECTION]
    assert 0 < len(fields) < len(outputs.images)  # fields the cross-validation did not keep stay 1
    fig = block_map_figure(outputs, k)
    panels = [ax for ax in fig.get_axes() if images_of(ax)]
    assert len(panels) == len(fields) + 1  # and the reference block map
    for ax, f in zip(panels, fields, strict=False):
        left, right, bottom, top = f.extent
        assert ax.get_xlim() == pytest.approx((left, right)) and ax.get_ylim() == pytest.approx((bottom, top))
        assert ax.get_title().startswith(f.name)
    assert f"{4 - len(fields)} of 4 images without local correction" in fig.get_suptitle()


def gain_bar(fig):
    return next(ax for ax in fig.get_axes() if ax.get_label() == "<colorbar>" and "local gain" in ax.get_ylabel())


@pytest.mark.parametrize(("spread", "half"), [(0.1, 0.1), (1e-4, GAIN_SCALE_FLOOR), (2e-3, GAIN_SCALE_FLOOR)])
def test_block_map_colours_are_symmetric_around_1_and_never_narrower_than_the_floor(spread, half):
    fields = [BlockMap("a", np.array([[1 + spread, 1.0], [1.0, np.nan]]), (0, 2, 0, 2)),
              BlockMap("b", np.array([[1 - spread / 2, 1.0]]), (5, 7, 0, 1))]  # fmt: skip
    fig = block_maps(fields, None, "red")
    clims = [images_of(ax)[0].get_clim() for ax in fig.get_axes() if images_of(ax)]
    assert clims == [pytest.approx((1 - half, 1 + half))] * 2
    ticks = [t.get_text() for t in gain_bar(fig).get_yticklabels()]
    assert ticks == [f"{1 - half:.4g}", "1", f"{1 + half:.4g}"]
    assert fig.get_axes()[1].get_xlim() == (5, 7)  # b on its own extent, not the union of both


def test_block_maps_of_float_noise_say_no_local_correction_instead_of_a_colour_bar():
    noise = [BlockMap(n, 1 + np.array([[2e-8, -2e-8], [1e-8, 0.0]]), (0, 2, 0, 2)) for n in "ab"]
    reference = BlockMap("reference", np.array([[100.0, 120.0]]), (0, 2, 0, 1))
    fig = block_maps(noise, reference, "red")
    labels = [ax.get_ylabel() for ax in fig.get_axes() if ax.get_label() == "<colorbar>"]
    assert labels == ["block mean"]  # no gain colour bar, hence no 0.99999998-1.00000002 scale
    notes = [t.get_text() for ax in fig.get_axes() for t in ax.texts]
    assert notes == [f"no local correction\n(every field within ±{NO_CORRECTION:g} of 1)"]
    assert sum(len(images_of(ax)) for ax in fig.get_axes()) == 1  # the reference block map only


def overlapping(fig, legend):
    """Axes (other than colour bars) whose area the legend covers, after laying the figure out."""
    FigureCanvasAgg(fig).draw()
    box = legend.get_window_extent()
    return [ax for ax in fig.get_axes() if ax.get_label() != "<colorbar>" and box.overlaps(ax.get_window_extent())]


def test_legends_sit_below_the_plots_never_over_them():
    names = [f"sen2_20210527_aber_overlap_tile{k:02d}" for k in range(16)]
    rng = np.random.default_rng(3)
    fig = spectral_profiles(names, rng.uniform(50, 600, (16, 10)), rng.uniform(50, 600, (16, 10)),
                            [str(b) for b in range(1, 11)], references=[0])  # fmt: skip
    (legend,) = fig.legends
    assert len(legend.get_texts()) == 16 and overlapping(fig, legend) == []
    assert all(ax.get_legend() is None for ax in fig.get_axes())
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]], float)
    fig = overlap_graph(["a", "b", "c"], [square, square + 5, None], [(0, 1, 50.0)], [0], [2])
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["isolated"] and overlapping(fig, legend) == []


def test_the_legend_check_sees_a_legend_inside_the_plot():
    fig = spectral_profiles(["a", "b"], np.ones((2, 3)), np.ones((2, 3)), ["1", "2", "3"])
    inside = fig.get_axes()[1].legend(loc="center")
    assert overlapping(fig, inside) == [fig.get_axes()[1]]


def test_quicklooks_two_images_per_input_with_the_before_stretch(match_run):
    outputs = load_run(match_run.out)
    fig = quicklook_figure(outputs, rgb=["3", "2", "1"])
    axes = fig.get_axes()
    assert len(axes) == 2 * len(outputs.images)
    assert all(len(images_of(ax)) == 1 for ax in axes)
    assert images_of(axes[0])[0].get_array().shape[2] == 4  # RGBA

    rng = np.random.default_rng(2)
    before = rng.uniform(0, 100, (1, 50, 60))
    after = 2 * before
    after[0, 0, 0] = np.nan
    fig = quicklooks([BeforeAfter("grey", before, after), BeforeAfter("no input", None, after)], [0])
    axes = fig.get_axes()
    assert [len(images_of(ax)) for ax in axes] == [1, 1, 0, 1]
    lo, hi = stretch_limits(before)
    shown = images_of(axes[1])[0].get_array()
    np.testing.assert_allclose(shown[..., 0], np.nan_to_num(to_rgba(after, lo, hi)[..., 0]))
    assert shown[0, 0, 3] == 0 and shown[1, 1, 3] == 1  # nodata is transparent
    assert (shown[..., 0] == 1).mean() > 0.4  # doubled values saturate under the before stretch


def test_figure_png_is_a_png_of_the_figure():
    fig = spectral_profiles(["a"], np.ones((1, 3)), np.ones((1, 3)), ["1", "2", "3"])
    png = figure_png(fig, dpi=50)
    assert png.startswith(b"\x89PNG")
    pixels = matplotlib.image.imread(io.BytesIO(png))
    assert pixels.shape[0] > 100 and pixels.std() > 0


@pytest.mark.parametrize("rgb", [["9", "1", "2"], ["red", "1"]])
def test_bad_rgb_bands_are_parameter_errors(match_run, rgb):
    from stacrrn.errors import ParameterError
    from stacrrn.report import rgb_bands

    with pytest.raises(ParameterError, match="--rgb"):
        rgb_bands(load_run(match_run.out), rgb)


def test_run_quicklooks_share_one_stretch_from_the_corrected_images():
    from stacrrn.report.run_figures import common_limits

    rng = np.random.default_rng(5)
    after = [rng.normal(100, 10, (3, 20, 20)) for _ in range(2)]
    previews = [BeforeAfter("a", 2 * after[0], after[0]), BeforeAfter("b", after[1] - 50, after[1])]
    lo, hi = common_limits(previews, [0, 1, 2])
    pooled = np.concatenate([a.reshape(3, -1) for a in after], axis=1)
    assert lo == pytest.approx(np.percentile(pooled, 2, axis=1))
    assert hi == pytest.approx(np.percentile(pooled, 98, axis=1))
    assert common_limits([BeforeAfter("c", after[0], None)], [0]) is None


def test_local_gain_maps_one_symmetric_panel_per_band_and_a_note_for_uncorrected_bands():
    values = np.array([[[1.1, 0.95, np.nan]], [[1.0, 1.0, np.nan]], [[1.0, 1.001, np.nan]]])
    mosaic = GainMosaic(values, np.array([0.1, 0.0, 0.001]))
    square = np.array([[0, 0], [2, 0], [2, 1], [0, 1], [0, 0]], float)
    fig = local_gain_maps(mosaic, (0, 3, 0, 1), ["b1", "b2", "b3"], [square, square + 1], view=(0, 2.5, 0, 1))
    panels = [ax for ax in fig.get_axes() if ax.get_label() != "<colorbar>"]
    assert len(panels) == 3 and [len(images_of(ax)) for ax in panels] == [1, 0, 1]
    assert images_of(panels[0])[0].get_clim() == pytest.approx((0.9, 1.1))  # symmetric around 1, to the spread
    assert images_of(panels[2])[0].get_clim() == pytest.approx((1 - GAIN_SCALE_FLOOR, 1 + GAIN_SCALE_FLOOR))
    bars = [ax for ax in fig.get_axes() if ax.get_label() == "<colorbar>"]
    assert [bar.get_visible() for bar in bars] == [True, False, True]  # the uncorrected band's is only kept for layout
    assert [t.get_text() for t in bars[0].get_xticklabels()] == ["0.9", "1", "1.1"]
    assert "no local correction" in " ".join(t.get_text() for t in panels[1].texts)
    assert all(sum(isinstance(p, Polygon) for p in ax.patches) == 2 for ax in panels)  # every image outlined
    assert panels[0].get_xlim() == (0, 2.5)
    assert "b1" in panels[0].get_title() and panels[1].get_title() == "b2"


def test_local_gain_figure_shows_the_block_mosaic_of_the_run(match_run):
    outputs = load_run(match_run.out)
    fig = local_gain_figure(outputs)
    assert fig is not None
    mosaic = gain_mosaic(outputs.model.local_fit)
    panels = [ax for ax in fig.get_axes() if images_of(ax)]
    assert len(panels) == int((~mosaic.uncorrected).sum()) > 0
    np.testing.assert_array_equal(images_of(panels[0])[0].get_array().filled(np.nan), mosaic.values[0])
    global_only = dataclasses.replace(outputs, model=dataclasses.replace(outputs.model, local_fit=None))
    assert local_gain_figure(global_only) is None
