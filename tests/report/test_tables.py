"""Metric tables from whatever quality keys a model holds: newer keys shown, missing ones left out."""

import dataclasses
import re

import numpy as np
import pytest

from stacrrn.report import load_run, profile_means
from stacrrn.report.html import records_table, table
from stacrrn.report.tables import metrics_html, parameters_table, summary_table

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
    for title in ("overlap consistency", "pixelwise overlap differences", "per date", "overlapping pairs",
                  "fidelity to the input", "clipped pixels", "spectral_angle_deg", "mean_before"):  # fmt: skip
        assert title in text, title
    dates = re.findall(r"2021-0(\d)-01", text)
    assert dates == sorted(dates) and len(dates) == 4
    assert "after global" in text and "block_std_diff" in text


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
    assert params.count("<tr>") == 1 + len(model.images) * 4 and "local shift" in params and "(reference)" in params
    summary = summary_table(model, LABELS, "match", "m.json")
    blocks = model.local_fit.blocks
    for value in ("global+local", "t00", model.digest(), f"{blocks.n_rows} x {blocks.n_cols} blocks", "EPSG:27700"):
        assert value in summary, value


def test_table_text_is_escaped():
    html = table(["<b>"], [["<script>alert(1)</script>"]]) + records_table([{"a&b": "x<y"}])
    assert "<script>" not in html and "&lt;script&gt;" in html and "a&amp;b" in html and "x&lt;y" in html
