"""The `stacrrn` command: outputs, summary, and one-line errors with exit code 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

import stacrrn.pipeline.match
from stacrrn.cli.app import app
from stacrrn.core.settings import LocalParams
from stacrrn.samples import write_sample_mosaic
from tests.conftest import BAHAMAS

runner = CliRunner()


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    return write_sample_mosaic(tmp_path_factory.mktemp("scenes"), tiles=2, tile_size=128, overlap=32)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from stacrrn.cli.app import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_error_line(stderr: str, *words: str) -> str:
    """The only line on stderr, which is an ``error:`` line holding ``words``."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def assert_user_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    text = " ".join(lines)
    assert "Traceback" not in proc.stderr
    assert text.startswith("error:"), proc.stderr
    for w in words:
        assert w in text, text


def test_match_writes_cogs_model_and_summary(mosaic, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["match", *map(str, mosaic.paths), "--out", str(out), "--reference", "tile_00", "--blocks", "8"]
    )
    assert result.exit_code == 0, result.output
    assert "overlap RMSE" in result.output and "fidelity of the output to its input" in result.output
    for p in mosaic.paths:
        with rasterio.open(out / p.name) as src:
            assert src.driver == "GTiff" and src.dtypes[0] == "uint16" and src.nodata == 0
            assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    assert (out / "stacrrn-model.json").exists()
    assert (out / "blockmaps" / "tile_01_field.tif").exists()
    with rasterio.open(out / "blockmaps" / "reference.tif") as src:
        ref = src.read()
        assert src.count == 4 and np.isfinite(ref).all() and (ref > 0).all()
    assert not (out / ".stacrrn-tmp").exists()


def test_resume_skips_current_outputs_and_redoes_damaged(mosaic, tmp_path):
    out = tmp_path / "out"
    args = ["match", *map(str, mosaic.paths), "--out", str(out), "--blocks", "4", "-q"]
    assert runner.invoke(app, args).exit_code == 0
    quality = json.loads((out / "stacrrn-model.json").read_text())["quality"]
    first = {p.name: (out / p.name).stat().st_mtime_ns for p in mosaic.paths}
    field = out / "blockmaps" / "tile_01_field.tif"
    field_mtime = field.stat().st_mtime_ns
    (out / "tile_02.tif").write_bytes(b"truncated")
    result = runner.invoke(app, [*args[:-1], "--resume"])
    assert result.exit_code == 0, result.output
    assert "kept from a previous run" in result.output and "statistics reused" in result.output
    assert (out / "tile_01.tif").stat().st_mtime_ns == first["tile_01.tif"]
    assert field.stat().st_mtime_ns == field_mtime
    with rasterio.open(out / "tile_02.tif") as src:
        assert src.count == 4
    # the kept outputs keep their figures in the model; the redone one is measured again (the same)
    resumed = json.loads((out / "stacrrn-model.json").read_text())["quality"]
    for key in ("fidelity", "clipped", "images"):
        assert resumed[key] == quality[key], key


@pytest.mark.skipif(not BAHAMAS, reason="../shared/data/landsat7_bahamas_quadrants is not present")
@pytest.mark.parametrize(
    ("options", "expected"),
    [([], LocalParams()), (["--local-extent", "image", "--local-decay", "3"], LocalParams(extent="image", decay=3.0))],
    ids=["defaults", "image-decay-3"],
)
def test_match_passes_local_extent_and_decay_to_match(tmp_path, monkeypatch, options, expected):
    calls = []
    real = stacrrn.pipeline.match.match

    def spy(*args, **kwargs):
        calls.append(args[2].model.local_params)  # match(inputs, out, options, ...)
        return real(*args, **kwargs)

    monkeypatch.setattr(stacrrn.pipeline.match, "match", spy)  # match_command imports it when called
    out = tmp_path / "out"
    # the four Landsat 7 quadrants of the Bahamas (400 x 400, 3 bands, uint8): a real, small run
    result = runner.invoke(app, ["match", *map(str, BAHAMAS), "--out", str(out), "--blocks", "8", "-q", *options])
    assert result.exit_code == 0, result.output
    assert calls == [expected]
    assert (out / "stacrrn-model.json").exists() and all((out / p.name).exists() for p in BAHAMAS)


def test_local_options_are_listed_with_their_defaults():
    for command in ("match", "run"):
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200", "TERM": "dumb"})
        assert result.exit_code == 0, result.output
        text = " ".join(result.output.split())
        assert "--local-extent" in text and "--local-decay" in text, command
        assert "[default: overlaps]" in text and "[default: 2.0]" in text, command


def test_unwritable_output(mosaic, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_cli("match", *map(str, mosaic.paths[:2]), "--out", str(blocker / "sub"))
    assert_user_error(proc, "output folder")


def test_output_folder_holding_the_inputs_is_refused(mosaic):
    folder = mosaic.paths[0].parent
    proc = run_cli("match", *map(str, mosaic.paths[:2]), "--out", str(folder))
    assert_user_error(proc, "overwrite")


def test_demo_runs_end_to_end_on_loopback_services(tmp_path):
    earlier = tmp_path / "normalized"  # what an earlier demo left: replaced, never kept beside the new run
    earlier.mkdir()
    (earlier / ".stacrrn-demo").touch()
    (earlier / "stacrrn-model-0123456789abcdef.json").write_text("{}")
    proc = run_cli("demo", "--out", str(tmp_path), "--gradient", "0")
    assert proc.returncode == 0, proc.stderr
    assert "recovered gains" in proc.stderr and "STAC API" in proc.stderr
    gain_error = float(proc.stderr.split("max relative error")[1].split("%")[0])
    assert gain_error < 0.05  # percent, on uint16 tiles with gains 0.8..1.2
    assert len(list((tmp_path / "normalized").glob("tile_*/tile_*.json"))) == 9
    assert (tmp_path / "normalized" / "collection.json").exists()
    assert not (earlier / "stacrrn-model-0123456789abcdef.json").exists()
    assert not list(tmp_path.glob(".stacrrn-demo-*"))  # no temporary folder left
    html = (tmp_path / "report" / "report.html").read_text()
    assert 'id="profiles"' in html and "tile_08" in html and f"report: {tmp_path}" in proc.stderr.replace("\n", "")


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "match" in result.output and "demo" in result.output


def test_match_on_a_dask_local_cluster_writes_the_same_pixels(mosaic, tmp_path):
    base = [*map(str, mosaic.paths), "--reference", "tile_00", "--blocks", "8", "--quiet"]
    assert runner.invoke(app, ["match", *base, "--out", str(tmp_path / "threads")]).exit_code == 0
    proc = run_cli("match", *base, "--out", str(tmp_path / "dask"), "--scheduler", "local", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    for p in mosaic.paths:
        with rasterio.open(tmp_path / "threads" / p.name) as a, rasterio.open(tmp_path / "dask" / p.name) as b:
            assert np.array_equal(a.read(), b.read())


def test_unreachable_scheduler_is_a_user_error(mosaic, tmp_path):
    proc = run_cli("match", *map(str, mosaic.paths), "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:9")
    assert_user_error(proc, "cannot reach the Dask scheduler", "--scheduler")
    assert not (tmp_path / "o").exists()


def json_lines(text: str) -> list[dict]:
    import json

    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_log_json_gives_progress_events_model_and_no_rich_output(mosaic, tmp_path):
    proc = run_cli("--log-json", "match", *map(str, mosaic.paths), "--out", str(tmp_path / "out"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    records = json_lines(proc.stderr)  # every stderr line is JSON
    progress = [r for r in records if r.get("event") == "progress"]
    for stage in ("statistics", "apply"):
        events = [r for r in progress if r["stage"] == stage]
        assert events and events[-1]["done"] == events[-1]["total"] > 0, stage
    (model,) = [r for r in records if r.get("event") == "model"]
    assert model["method"] == "global+local" and len(model["rmse_after"]) == 4
    assert all(a < b for a, b in zip(model["rmse_after"], model["rmse_before"], strict=True))
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)


def test_log_json_error_is_one_json_line_with_exit_2(mosaic, tmp_path):
    proc = run_cli("--log-json", "match", str(mosaic.paths[0]), str(tmp_path / "nope.tif"), "--out", str(tmp_path))
    assert proc.returncode == 2
    (record,) = json_lines(proc.stderr)
    assert record["level"] == "error" and record["event"] == "error" and record["exit_code"] == 2
    assert "nope.tif" in record["message"] and "Traceback" not in proc.stderr


def test_verbose_shows_what_the_pipeline_does(mosaic, tmp_path):
    quiet = run_cli("match", *map(str, mosaic.paths), "--out", str(tmp_path / "a"), "--quiet")
    loud = run_cli("-v", "match", *map(str, mosaic.paths), "--out", str(tmp_path / "b"), "--quiet")
    assert quiet.returncode == loud.returncode == 0
    assert "pass 1" not in quiet.stderr
    assert "pass 1 done" in loud.stderr and "overlap RMSE" in loud.stderr and "pass 2 done" in loud.stderr


def test_a_single_unreadable_input_is_reported_as_unreadable(tmp_path):
    proc = run_cli("match", str(tmp_path / "nosuch.tif"), "-o", str(tmp_path / "out"))
    assert_user_error(proc, "cannot read", "nosuch.tif")
    assert "at least two" not in proc.stderr and not (tmp_path / "out").exists()
