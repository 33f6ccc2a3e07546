"""The whole report: self-contained HTML with every section, PNG files, rendered by headless Chromium."""

import re
import shutil
import subprocess

import matplotlib.image
import numpy as np
import pytest

from stacrrn.pipeline.match import match
from stacrrn.report import build_report

SECTIONS = ("summary", "profiles", "parameters", "overlap-graph", "block-maps", "quicklooks", "metrics")


@pytest.fixture(scope="module")
def report(match_run, tmp_path_factory):
    return build_report(match_run.out, tmp_path_factory.mktemp("report"), rgb=["3", "2", "1"])


def test_report_has_every_section_and_only_embedded_images(report):
    text = report.html.read_text()
    for section in SECTIONS:
        assert f'<h2 id="{section}">' in text, section
    sources = re.findall(r'<img src="([^"]*)"', text)
    assert len(sources) == 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"<(script|link)\b", text) and "http://" not in text and "https://" not in text
    assert sorted(p.name for p in report.pngs) == sorted(f"{s}.png" for s in SECTIONS if s in report.figures)
    assert set(report.figures) == {"profiles", "overlap-graph", "block-maps", "quicklooks"}
    for png in report.pngs:
        assert png.read_bytes().startswith(b"\x89PNG")
    assert not (report.html.parent / ".stacrrn-tmp").exists()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not on PATH (apt-get install chromium)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    shot = tmp_path / "shot.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", "--window-size=1200,3000", report.html.resolve().as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert shot.exists() and shot.stat().st_size > 0
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (3000, 1200)
    assert len(np.unique(pixels[..., :3].reshape(-1, 3), axis=0)) > 100  # text, tables and figures, not blank


def test_a_global_only_run_says_it_has_no_block_maps(match_run, tmp_path):
    inputs = [im.path for im in match_run.result.model.images]
    match(inputs, tmp_path / "global", references=["t00"], method="global")
    result = build_report(tmp_path / "global")
    assert result.html == tmp_path / "global" / "report" / "report.html"
    text = result.html.read_text()
    assert '<h2 id="block-maps">' in text and "no local step" in text and "block-maps" not in result.figures
