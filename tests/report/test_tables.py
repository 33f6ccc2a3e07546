"""Metric tables from whatever quality keys a model holds: newer keys shown, missing ones left out."""

import dataclasses
import re

import numpy as np
import pytest

from stacrrn.report import load_run, profile_means
from stacrrn.report.html import fmt, records_table, table
from stacrrn.report.tables import metrics_html, parameters_table, summary_table
from tests.report.html_tables import column, tables

LABELS = ["blue", "green", "red", "nir"]


def richer_quality(quality):
    q = dict(quality)
    q["images"] = [
        r | {"datetime": f"2021-0{5 - k}-01T10:00:00Z", "mean_before": [1.0 + k] * 4, "mean_after": [2.0 + k] * 4,
             "std_before": [1.0] * 4, "std_after": [1.0] * 4}
        for k, r in enumerate(quality["images"])
    ]  # fmt: skip
    q["fidelity"] = {
        r["name"]: {
            "correlation": [0.99] * 4,
            "ssim": [0.9] * 4,
            "spectral_angle_deg": 1.5,
            "clipped_fraction": [0.0] * 4,
        }
        for r in quality["images"]
    }
    q["overlap_pixels"] = {
        "before": {"rmse": [10.0] * 4, "mae": [8.0] * 4},
        "after": {"rmse": [1.0] * 4, "mae": [0.5] * 4},
    }
    return q


def test_newer_quality_keys_become_tables_and_a_time_series_is_sorted_by_date(match_run):
    quality = richer_quality(match_run.result.model.quality)
    text = metrics_html(quality, LABELS)
    for title in ("overlap agreement after the global step", "block-level overlap agreement",
                  "pixelwise overlap differences", "per date", "overlapping pairs", "fidelity to the input",
                  "clipped pixels", "spectral angle deg", "mean of the valid pixels, input → output",
                  "correlation, per band (4 images x 4 bands)"):  # fmt: skip
        assert title in text, title
    dates = re.findall(r"2021-0(\d)-01", text)
    assert dates == sorted(dates) and len(dates) == 4
    assert "RMS block-std difference, after global + local" in text
    mean = next(t for t in tables(text) if t[0] == ["image", *LABELS] and "→" in t[1][1])
    assert mean[1][1:] == ["4 → 5"] * 4  # the earliest date (the fourth image) first, input -> output


def labelled_quality():
    """Overlap figures whose stages all differ, as a model with a strong local step holds them."""
    return {
        "before": {"mean_diff": [9.0], "rmse": [10.0], "block_mean_diff": [8.0]},
        "after_affine": {"mean_diff": [3.0], "rmse": [95.53], "block_mean_diff": [4.0]},
        "after": {"mean_diff": [3.0], "rmse": [95.53], "block_mean_diff": [1.0]},  # moments: global only
        "overlap_pixels": {"before": {"rmse": [10.0], "mae": [7.0], "pixels": [500]},
                           "after": {"rmse": [3.172], "mae": [2.0], "pixels": [500]}},
    }  # fmt: skip


def test_every_overlap_figure_sits_under_the_stage_it_measures():
    text = metrics_html(labelled_quality(), ["red"])
    pixels, blocks, moments = tables(text)
    assert column(pixels, "pixelwise RMSE, before (inputs)") == ["10"]
    assert column(pixels, "pixelwise RMSE, after global + local") == ["3.172"]
    assert column(blocks, "RMS block-mean difference, after global step") == ["4"]
    assert column(blocks, "RMS block-mean difference, after global + local") == ["1"]
    assert column(moments, "pixelwise RMSE, after global step") == ["95.53"]  # the global step's, and said so
    assert not any("local" in h for h in moments[0])  # the moments never include the local step
    assert all(not h.endswith(", after") for t in (pixels, blocks, moments) for h in t[0])  # no bare "after"
    global_only = metrics_html(labelled_quality(), ["red"], local=False)
    assert "after global + local" not in global_only and "the model has no local step" in global_only


def test_pairs_without_overlap_are_left_out_and_counted():
    pairs = [{"images": ["a", "b"], "overlap_pixels": 10, "used_pixels": 8, "holdout_pixels": 2},
             {"images": ["a", "c"], "overlap_pixels": 0, "used_pixels": 0, "holdout_pixels": 0},
             {"images": ["b", "c"], "overlap_pixels": 0, "used_pixels": 0, "holdout_pixels": 0}]  # fmt: skip
    text = metrics_html({"pairs": pairs}, ["red"])
    (listed,) = tables(text)
    assert column(listed, "pair") == ["a - b"] and column(listed, "used pixels") == ["8"]
    assert "overlapping pairs (1)" in text and "2 of 3 pairs do not overlap and are not listed" in text


def test_no_cell_reads_nan_or_inf():
    assert [fmt(v) for v in (float("nan"), float("inf"), -float("inf"), None, 1e-13)] == ["-", "∞", "-∞", "-", "1e-13"]
    text = metrics_html({"before": {"rmse": [float("nan")]}, "after_affine": {"rmse": [float("inf")]}}, ["red"])
    assert not re.search(r"\b(nan|inf)\b", text, re.IGNORECASE)


def test_profiles_use_the_model_means_when_present(match_run):
    outputs = load_run(match_run.out)
    quality = richer_quality(outputs.model.quality)
    images = tuple(dataclasses.replace(im, before=(), after=()) for im in outputs.images)  # nothing to read
    richer = dataclasses.replace(outputs, model=dataclasses.replace(outputs.model, quality=quality), images=images)
    before, after = profile_means(richer)
    np.testing.assert_array_equal(before[:, 0], [1, 2, 3, 4])
    np.testing.assert_array_equal(after[:, 3], [2, 3, 4, 5])
    # without them, and without rasters, the profile is unknown (NaN) rather than an error
    bare = dataclasses.replace(richer, model=dataclasses.replace(outputs.model, quality={}))
    assert np.isnan(profile_means(bare)[0]).all()


@pytest.mark.parametrize(
    "quality",
    [
        {},
        {"before": {"rmse": [1.0]}, "images": [{"name": "a"}], "pairs": []},  # one band of four, a sparse image row
        {"fidelity": "unexpected", "clipped": {"a": [1, 2]}, "holdout": [{"image": "a", "bands": [{"band": 1}]}]},
    ],
)
def test_missing_or_odd_quality_keys_never_fail(quality):
    text = metrics_html(quality, LABELS)
    assert isinstance(text, str) and "Traceback" not in text


def test_parameter_and_summary_tables(match_run):
    model = match_run.result.model
    params = parameters_table(model, LABELS)
    gain, offset, *local = tables(params)  # images x bands, one table each
    assert gain[0] == ["image", *LABELS] and len(gain) == len(offset) == 1 + len(model.images)
    assert column(gain, "red") == [fmt(g) for g in model.global_fit.gains[:, 2]] and "(reference)" in gain[1][0]
    assert len(local) == 1 + bool(np.any(model.local_fit.shifts)) and "local field range" in params
    assert column(local[0], "blue")[0] == "1" and " to " in column(local[0], "blue")[1]  # t00 is not ramped, t01 is
    summary = summary_table(model, LABELS, "match", "m.json")
    blocks = model.local_fit.blocks
    for value in ("global+local", "t00", model.digest(), f"{blocks.n_rows} x {blocks.n_cols} blocks", "EPSG:27700"):
        assert value in summary, value


def test_table_text_is_escaped():
    html = table(["<b>"], [["<script>alert(1)</script>"]]) + records_table([{"a&b": "x<y"}])
    assert "<script>" not in html and "&lt;script&gt;" in html and "a&amp;b" in html and "x&lt;y" in html
