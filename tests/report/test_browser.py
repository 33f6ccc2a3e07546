"""The report as a reader sees it: laid out by headless Chromium in a 1280 px wide window.

The run is the newcomer's case on real imagery: nine Sentinel-2 tiles with all ten bands and
no band names, 20 pairs whose footprints meet (of 36), and local fields that stay 1.
"""

import re

import pytest

from stacrrn.report import build_report
from tests.report.browser import CHROMIUM, measure_pages

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (apt-get install chromium)")

WORDS = re.compile(r"\b(nan|inf|infinity)\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def pages(s2_mosaic, tmp_path_factory):
    """The report, and a control copy of it without the rule that lets wide tables scroll in their boxes."""
    report = build_report(s2_mosaic.out, tmp_path_factory.mktemp("s2-report"))
    text = report.html.read_text(encoding="utf-8")
    control = text.replace("overflow-x:auto", "overflow-x:visible")
    return measure_pages({"report": text, "control": control}, tmp_path_factory.mktemp("chromium"))


def test_nothing_overflows_the_window_and_wide_tables_scroll_in_their_boxes(pages):
    page = pages["report"]
    assert page["innerWidth"] == 1280
    assert page["scrollWidth"] <= page["clientWidth"], page["outside"]
    assert page["outside"] == []
    wide = [s for s in page["scrollers"] if s["scrollWidth"] > s["clientWidth"]]
    assert wide and all(s["overflowX"] == "auto" for s in wide)  # ten bands of long cells: some tables scroll
    control = pages["control"]  # the same page without overflow-x:auto: the check above would fail
    assert control["scrollWidth"] > control["clientWidth"]


def test_every_image_decodes_and_no_text_says_nan_or_inf(pages):
    page = pages["report"]
    alts = [im["alt"] for im in page["images"]]  # no local gain map: there is no local correction
    assert alts == [
        "mosaic before and after",
        "mean spectral profiles before and after",
        "overlap graph over the footprints",
        "local gain fields and reference",
        "before/after quick-looks",
    ]
    assert all(im["naturalWidth"] > 0 for im in page["images"])
    assert all(im["right"] <= page["clientWidth"] for im in page["images"])
    assert [t for t in page["texts"] if WORDS.search(t)] == []


def test_the_run_without_local_correction_says_so_instead_of_a_colour_bar(pages):
    sections = pages["report"]["sections"]
    assert "no local correction: every local gain field is within ±1e-06 of 1" in sections["block-maps"]["text"]
    assert "no local correction" in sections["local-correction"]["text"]
    assert "local fields: every gain within ±1e-06 of 1 (no local correction)" in sections["parameters"]["text"]
    assert "bands with local correction (a field beyond ±1e-06 of 1)\tnone" in sections["summary"]["text"]


def test_the_pairs_whose_footprints_meet_are_listed(pages):
    """3 x 3 tiles: 6 + 6 side neighbours and 8 diagonal ones meet; the other 16 of the 36 pairs are not listed."""
    metrics = pages["report"]["sections"]["metrics"]["text"]
    assert "overlapping pairs (20)" in metrics and "do not overlap" not in metrics  # (hidden pairs: test_tables.py)
    pairs = metrics[metrics.index("overlapping pairs (20)") :]
    listed = re.findall(r"^sen2_\w+_tile\d\d - sen2_\w+_tile\d\d\t", pairs, re.MULTILINE)
    assert len(listed) == 20


def test_every_overlap_number_says_what_it_is(pages):
    headers = pages["report"]["sections"]["metrics"]["headers"]
    stages = [h for h in headers if "after" in h or "before" in h]
    assert stages and all(re.search(r"(before|after global step|after global \+ local)", h) for h in stages), (
        stages
    )  # never a bare "after"
    assert any(h.startswith("pixelwise RMSE, after global step") for h in headers)  # from the moments
    assert any(h.startswith("pixelwise RMSE, after global + local") for h in headers)  # read from the rasters
    assert any(h.startswith("RMS block-mean difference, after global + local") for h in headers)
    text = pages["report"]["sections"]["metrics"]["text"]
    assert (
        "(exact, from pass-1 moments)" in text and "(read from the rasters)" in text and "(pass-1 block means)" in text
    )


def test_parameters_are_images_by_bands_tables(pages):
    section = pages["report"]["sections"]["parameters"]
    assert section["rows"] == 2 * (1 + 9)  # gain and offset, a header and a row per image, not 90 rows per table
    assert section["headers"][:3] == ["image", "1", "2"]


def test_the_quicklooks_say_which_bands_are_red_green_and_blue(pages):
    text = pages["report"]["sections"]["quicklooks"]["text"]
    assert "R: 1, G: 2, B: 3 (the first three bands: no bands have the common names red, green and blue" in text
    assert "R: 1, G: 2, B: 3" in pages["report"]["sections"]["mosaic"]["text"]
