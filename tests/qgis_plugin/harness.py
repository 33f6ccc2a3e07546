"""Running QGIS (Debian's python3-qgis) in a subprocess with the stacrrn plugin, from the project's venv.

QGIS's Python is the system's ``/usr/bin/python3``; ``make qgis-venv`` builds ``.qgis-venv`` on
top of it (system site packages + stacrrn). The tests skip, saying why, only where QGIS's
bindings or that venv are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("qgis_driver.py")
SYSTEM_PYTHON = "/usr/bin/python3"
QGIS_VENV_PYTHON = ROOT / ".qgis-venv" / "bin" / "python"
ARTIFACTS = ROOT / "test-artifacts" / "qgis"


def _why_not() -> str | None:
    try:
        proc = subprocess.run([SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no QGIS here: {SYSTEM_PYTHON} cannot run ({exc}); apt-get install python3-qgis"
    if proc.returncode != 0:
        return f"no QGIS here: {SYSTEM_PYTHON} cannot import qgis.core; apt-get install python3-qgis (.ci/run does)"
    if not QGIS_VENV_PYTHON.exists():
        return "the QGIS test environment .qgis-venv is missing: run `make qgis-venv` (`make test` does)"
    return None


REASON = _why_not()
needs_qgis = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def qgis_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of a QGIS subprocess: headless, a throwaway profile, the AWS/GDAL settings of this one."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    profile = tmp / "qgis-profile"
    profile.mkdir(parents=True, exist_ok=True)
    runtime = tmp / "xdg-runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env |= {"QT_QPA_PLATFORM": "offscreen", "QGIS_CUSTOM_CONFIG_PATH": str(profile), "XDG_RUNTIME_DIR": str(runtime)}
    env |= {"MPLBACKEND": "Agg"}
    return env | extra


def drive(
    tmp: Path,
    *args: str,
    python: str | Path = QGIS_VENV_PYTHON,
    xvfb: bool = False,
    timeout: float = 300,
    **env: str,
) -> dict[str, Any]:
    """Run ``qgis_driver.py ARGS`` with QGIS's Python; return its JSON (failing on a crash).

    The driver's wall time is recorded as ``_seconds``.
    """
    command = [str(python), str(DRIVER), *args]
    if xvfb:
        command = [shutil.which("xvfb-run") or "xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", *command]
    start = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=qgis_env(tmp, **env))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, f"QGIS driver failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert "crash" not in result, result.get("crash")
    result["_seconds"] = time.monotonic() - start
    return result


def run_jobs(tmp: Path, jobs: list[dict[str, Any]], **env: str) -> list[dict[str, Any]]:
    """``processing.run`` each job (``{"alg", "params"[, "cancel_at", "watch"]}``) in one QGIS session."""
    path = tmp / f"jobs-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(jobs))
    done: list[dict[str, Any]] = drive(tmp, "run", str(path), **env)["jobs"]
    return done
