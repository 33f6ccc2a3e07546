"""The plugin package, the provider in headless QGIS, its parameters, the missing-stacrrn message, the dialog."""

from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import stacrrn
from stacrrn.core.masks import QA_DECODERS
from stacrrn.core.settings import LOCAL_EXTENTS, LocalParams
from stacrrn.options import (
    CLOUD_MASKS,
    LOCAL_CLOUD_MASKS,
    MODES,
    ON_ERROR,
    OPTION_FIELDS,
    PIF_KINDS,
    SEAM_MODES,
    PifOptions,
    default_of,
)
from stacrrn.pipeline.match import STAC_ONLY
from tests.qgis_plugin.harness import ARTIFACTS, ROOT, SYSTEM_PYTHON, drive, needs_qgis

PLUGIN = ROOT / "qgis_plugin" / "stacrrn_qgis"
ALGORITHMS = {"match", "stac_search", "stac_run", "clouds", "pif", "seamlines", "mosaic", "report"}

# every enum and the library registry it must offer, per algorithm ("*": every algorithm that has it)
REGISTRIES = {
    ("*", "METHOD"): stacrrn.METHODS,
    ("*", "ESTIMATOR"): stacrrn.ESTIMATORS,
    ("*", "LOCAL_EXTENT"): LOCAL_EXTENTS,
    ("*", "PIF"): PIF_KINDS,
    ("*", "SEAMS"): SEAM_MODES,
    ("*", "MASK_KIND"): tuple(QA_DECODERS),
    ("stacrrn:match", "CLOUD_MASK"): LOCAL_CLOUD_MASKS,
    ("stacrrn:clouds", "CLOUD_MASK"): LOCAL_CLOUD_MASKS,
    ("stacrrn:pif", "CLOUD_MASK"): LOCAL_CLOUD_MASKS,
    ("stacrrn:stac_run", "CLOUD_MASK"): CLOUD_MASKS,
    ("stacrrn:stac_run", "MODE"): MODES,
    ("stacrrn:stac_run", "ON_ERROR"): ON_ERROR,
    ("*", "OVERLAP_PIXELS"): ("auto", "yes", "no"),
}


def test_plugin_package_and_zip(tmp_path):
    metadata = configparser.ConfigParser()
    metadata.read(PLUGIN / "metadata.txt")
    general = metadata["general"]
    assert general["version"] == stacrrn.__version__
    assert general["qgisMinimumVersion"] == "3.22" and general["hasProcessingProvider"] == "yes"
    for key in ("name", "description", "about", "author", "email", "repository", "experimental", "icon"):
        assert general[key].strip(), key
    assert (PLUGIN / general["icon"]).read_text().startswith("<svg")
    (PLUGIN / "__pycache__").mkdir(exist_ok=True)  # caches must stay out of the zip
    proc = subprocess.run(
        [sys.executable, str(ROOT / "qgis_plugin" / "build.py"), str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    names = zipfile.ZipFile(tmp_path / f"stacrrn_qgis-{stacrrn.__version__}.zip").namelist()
    assert "stacrrn_qgis/metadata.txt" in names and "stacrrn_qgis/__init__.py" in names
    assert all(n.startswith("stacrrn_qgis/") and "__pycache__" not in n for n in names)


@needs_qgis
def test_provider_registers_every_algorithm_with_valid_parameters(tmp_path):
    d = drive(tmp_path, "describe")
    assert d["provider"] == "stacrrn" and stacrrn.__version__ in d["long_name"] and d["warning"] == ""
    algorithms = d["algorithms"]
    assert set(algorithms) == {f"stacrrn:{name}" for name in ALGORITHMS}
    for alg_id, alg in algorithms.items():
        assert alg["can_execute"] == [True, ""], alg_id
        assert alg["display_name"] and alg["group"] and len(alg["help"]) > 100, alg_id
        names = [p["name"] for p in alg["parameters"]]
        assert len(names) == len(set(names)) and all(n.isupper() for n in names), alg_id
        assert not alg["empty_parameters_ok"] and alg["empty_parameters_message"], alg_id
        assert any(p["is_destination"] for p in alg["parameters"]) and alg["outputs"], alg_id
        for p in alg["parameters"]:
            where = f"{alg_id} {p['name']}"
            assert p["description"], where
            mandatory_without_default = not p["optional"] and p["default"] is None and not p["is_destination"]
            assert p["default_acceptable"] or mandatory_without_default, where
            assert p["type"] not in ("string",) or p["name"] in STRINGS, f"{where}: free text where a type fits?"
            if p["type"] == "number":
                assert p["default_in_range"] and p["minimum"] > -1e300, where  # every number has a range
            if p["type"] == "enum":
                assert p["options"] and p["static"], where
                expected = REGISTRIES.get((alg_id, p["name"]), REGISTRIES.get(("*", p["name"])))
                assert expected is not None, f"{where}: which registry?"
                assert p["options"] == list(expected), where
    match = {p["name"]: p for p in algorithms["stacrrn:match"]["parameters"]}
    assert match["INPUT"]["type"] == "multilayer" and match["REFERENCES"]["type"] == "multilayer"
    assert match["METHOD"]["default"] == "global+local" and match["OUTPUT_FOLDER"]["type"] == "folderDestination"
    assert match["LOCAL_EXTENT"]["default"] == "overlaps" and not match["LOCAL_EXTENT"]["advanced"]
    assert match["LOCAL_DECAY"]["default"] == 2.0 and match["LOCAL_DECAY"]["minimum"] == 1
    names = [p["name"] for p in algorithms["stacrrn:match"]["parameters"]]
    assert names.index("LOCAL_EXTENT") == names.index("METHOD") + 1 == names.index("LOCAL_DECAY") - 1
    search = {p["name"]: p for p in algorithms["stacrrn:stac_run"]["parameters"]}
    assert search["EXTENT"]["type"] == "extent" and search["START"]["type"] == "datetime"
    assert search["LOCAL_EXTENT"]["default"] == "overlaps" and search["LOCAL_DECAY"]["default"] == 2.0
    for alg_id, covered in (("stacrrn:match", MATCH_OPTIONS), ("stacrrn:stac_run", RUN_OPTIONS)):
        params = {p["name"]: p for p in algorithms[alg_id]["parameters"]}
        local_only = set(STAC_ONLY) | TIME_SERIES if alg_id == "stacrrn:match" else set()
        assert set(covered) | NOT_IN_PLUGIN | local_only == set(OPTION_FIELDS), f"{alg_id}: which parameter offers it?"
        for field, names in covered.items():
            for name, default in names.items():
                assert name in params, f"{alg_id} misses {name} (option {field})"
                assert params[name]["default"] == default, f"{alg_id} {name}: the library's default is {default!r}"


# each option of stacrrn.options and the plugin parameter(s) offering it, with the library's default
MATCH_OPTIONS = {
    "references": {"REFERENCES": None},
    "method": {"METHOD": default_of("method")},
    "estimator": {"ESTIMATOR": default_of("estimator")},
    "min_overlap": {"MIN_OVERLAP": default_of("min_overlap")},
    "block_size": {"BLOCK_SIZE": None},
    "n_blocks": {"BLOCKS": None},
    "local_params": {"LOCAL_EXTENT": LocalParams.extent, "LOCAL_DECAY": LocalParams.decay},
    "crs": {"CRS": None},
    "resolution": {"RESOLUTION": None},
    "cloud_mask": {"CLOUD_MASK": default_of("cloud_mask")},
    "reflectance": {"REFLECTANCE_SCALE": None, "REFLECTANCE_OFFSET": 0.0},
    "pif": {"PIF": [], "PIF_THRESHOLD": PifOptions.threshold, "PIF_MIN_SHARE": PifOptions.min_share},  # []: none
    "overlap_pixels": {"OVERLAP_PIXELS": "auto"},
    "workers": {"WORKERS": default_of("workers")},
    "resume": {"RESUME": default_of("resume")},
}
RUN_OPTIONS = {
    **MATCH_OPTIONS,
    "assets": {"ASSETS": None},
    "mode": {"MODE": default_of("mode")},
    "neighbours": {"NEIGHBOURS": None},
    "star": {"STAR": default_of("star")},
    "collection_id": {"COLLECTION_ID": None},
    "on_error": {"ON_ERROR": default_of("on_error")},
}
# options the plugin leaves at the library's default: tuning (chunks, fidelity sampling),
# publishing to a STAC API and the output format (a QGIS user loads the corrected COGs as layers)
NOT_IN_PLUGIN = {"chunk_size", "fidelity_every", "format", "publish"}
# the plugin's match algorithm normalizes mosaics of layers; time series go through stac_run (dated items)
TIME_SERIES = {"mode", "neighbours", "star"}


# names the data defines (ids, keys, band names, a URL): text, validated by stacrrn where it reads them
STRINGS = {
    "BANDS",
    "BAND_NAMES",
    "STAC_URL",
    "COLLECTIONS",
    "ASSETS",
    "REFERENCES",
    "COLLECTION_ID",
    "S3_PREFIX",
    "RGB",
}


@needs_qgis
@pytest.mark.parametrize(
    ("pythonpath", "module"),
    [("", "stacrrn"), (str(ROOT), None)],
    ids=["stacrrn-missing", "dependency-missing"],
)
def test_without_stacrrn_the_plugin_loads_and_says_what_is_missing(tmp_path, pythonpath, module):
    # QGIS's own Python without the venv: stacrrn (or, with the source tree on the path, its dependencies) absent
    d = drive(tmp_path, "missing", python=SYSTEM_PYTHON, **({"PYTHONPATH": pythonpath} if pythonpath else {}))
    message = d["warning"]
    assert message.startswith("stacrrn is not installed in QGIS's Python 3.") and "No module named" in message
    assert message.endswith("see docs/qgis.md")
    if module:
        assert f"No module named '{module}'" in message
    else:
        assert "'stacrrn'" not in message  # stacrrn itself imports; a dependency does not
    assert len(d["algorithms"]) == len(ALGORITHMS)  # the provider is there, its algorithms refuse to run
    assert d["long_name"] == "stacrrn (not installed)"
    assert d["message_bar"] == [["stacrrn", message]]
    assert d["can_execute"] == [False, message]
    assert d["run_error"].endswith(message) and "Traceback" not in d["run_error"]


@needs_qgis
def test_match_dialog_screenshot_under_xvfb(tmp_path):
    from PIL import Image

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = ARTIFACTS / "match-dialog.png"
    png.unlink(missing_ok=True)
    d = drive(tmp_path, "screenshot", "stacrrn:match", str(png), xvfb=True, QT_QPA_PLATFORM="xcb")
    assert d["saved"] and d["title"] == "Normalize rasters (match)"
    for label in ("Overlapping rasters", "Method", "Reference images (among the inputs) [optional]", "Output folder"):
        assert label in d["labels"]
    assert png.stat().st_size > 20_000
    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert pixels.shape[0] >= 800 and pixels.shape[1] >= 900
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # text and widgets, not one flat colour
