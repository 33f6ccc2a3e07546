"""The whole report: self-contained HTML with every section, PNG files, rendered by headless Chromium."""

import json
import re
import shutil

import numpy as np
import pytest

from stacrrn.pipeline.match import MODEL_FILE, match
from stacrrn.report import build_report

SECTIONS = (
    "summary", "mosaic", "profiles", "parameters", "overlap-graph", "local-correction", "block-maps", "quicklooks",
    "metrics",
)  # fmt: skip
FIGURES = {"mosaic", "profiles", "overlap-graph", "local-correction", "block-maps", "quicklooks"}


@pytest.fixture(scope="module")
def report(match_run, tmp_path_factory):
    return build_report(match_run.out, tmp_path_factory.mktemp("report"), rgb=["3", "2", "1"])


def test_report_has_every_section_and_only_embedded_images(report):
    text = report.html.read_text()
    for section in SECTIONS:
        assert f'<h2 id="{section}">' in text, section
    sources = re.findall(r'<img src="([^"]*)"', text)
    assert len(sources) == 6 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"<(script|link)\b", text) and "http://" not in text and "https://" not in text
    assert sorted(p.name for p in report.pngs) == sorted(f"{s}.png" for s in SECTIONS if s in report.figures)
    assert set(report.figures) == FIGURES
    for png in report.pngs:
        assert png.read_bytes().startswith(b"\x89PNG")
    assert not (report.html.parent / ".stacrrn-tmp").exists()


def test_a_global_only_run_says_it_has_no_block_maps(match_run, tmp_path):
    inputs = [im.path for im in match_run.result.model.images]
    match(inputs, tmp_path / "global", references=["t00"], method="global")
    result = build_report(tmp_path / "global")
    assert result.html == tmp_path / "global" / "report" / "report.html"
    text = result.html.read_text()
    assert '<h2 id="block-maps">' in text and "no local step" in text and "block-maps" not in result.figures
    assert "hence no local correction" in text and "local-correction" not in result.figures


def test_local_correction_maps_every_band_over_the_mosaic_before_the_block_maps(report):
    text = report.html.read_text()
    section = text[text.index('<h2 id="local-correction">') : text.index('<h2 id="block-maps">')]
    assert "local gain of every band over the whole mosaic" in section and "largest |log gain|" in section
    assert 'alt="local gain of every band over the mosaic"' in section
    assert "no local correction" not in section  # the ramps of tiles 1-3 are corrected in every band


def run_with_ones(match_run, tmp_path, bands):
    """A copy of the match run whose model's local fields are exactly 1 in ``bands`` (positions)."""
    run = tmp_path / "run"
    shutil.copytree(match_run.out, run, ignore=shutil.ignore_patterns("report"))
    model = json.loads((run / MODEL_FILE).read_text())
    fields = [np.asarray(f, dtype=float) for f in model["local"]["fields"]]
    for f in fields:
        f[bands] = 1.0
    model["local"]["fields"] = [f.tolist() for f in fields]
    (run / MODEL_FILE).write_text(json.dumps(model))
    return build_report(run, tmp_path / "report")


def test_a_model_with_all_ones_fields_says_no_local_correction(match_run, tmp_path):
    result = run_with_ones(match_run, tmp_path, slice(None))
    text = result.html.read_text()
    assert "no local correction: every local gain field is within ±1e-06 of 1 in every band" in text
    assert "local-correction" not in result.figures and "block-maps" in result.figures  # the reference block map


def test_bands_without_local_correction_are_named_and_the_others_mapped(match_run, tmp_path):
    result = run_with_ones(match_run, tmp_path, [1])
    text = result.html.read_text()
    assert "no local correction in band 2 (gains within ±1e-06 of 1)" in text and "local-correction" in result.figures
