"""``stacrrn report``: writes the report where it says, one-line errors with exit code 2 on bad input."""

import subprocess
import sys

from typer.testing import CliRunner

from stacrrn.cli.app import app

runner = CliRunner()


def test_report_command_writes_the_report_and_says_where(match_run, tmp_path):
    out = tmp_path / "rep"
    result = runner.invoke(app, ["report", str(match_run.out), "--out", str(out), "--rgb", "3,2,1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").exists() and (out / "quicklooks.png").exists()
    assert result.stdout.strip() == str(out / "report.html")


def test_report_command_defaults_to_the_run_folder(match_run):
    result = runner.invoke(app, ["report", str(match_run.out)])
    assert result.exit_code == 0, result.output
    assert (match_run.out / "report" / "report.html").exists()
    assert str(match_run.out / "report" / "report.html") in result.stdout


def test_a_missing_run_exits_2_with_one_line_and_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-c", "from stacrrn.cli.app import main; main()", "report", "/nonexistent"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "/nonexistent does not exist" in lines[0]
    assert "Traceback" not in proc.stderr and not proc.stdout


def test_a_folder_without_a_run_is_a_user_error(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "neither stacrrn-model.json nor collection.json" in result.output
    assert not (tmp_path / "report").exists()


def test_unknown_rgb_band_is_a_user_error(match_run, tmp_path):
    result = runner.invoke(app, ["report", str(match_run.out), "--out", str(tmp_path), "--rgb", "red,green,blue"])
    assert result.exit_code == 2 and "--rgb" in result.output
    assert not (tmp_path / "report.html").exists()
