"""The layers hold: the import-linter contracts of pyproject.toml, and the core's imports at run time.

``lint-imports`` reads every import statement (including those inside functions and under
``TYPE_CHECKING``), so the contracts cover every module of the package. It cannot see imports
made at run time by name (``importlib.import_module``) nor what a third-party package imports
in turn; the second test imports every core module and looks at ``sys.modules``.
"""

import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import stacrrn.core

ROOT = Path(__file__).resolve().parents[2]

IO_LIBRARIES = ("rasterio", "pystac", "pystac_client", "xarray", "s3fs", "odc", "fsspec", "requests", "typer", "rich")
"""What the numerical core must not load (DESIGN.md §8: a pure numpy core)."""


def _lint_imports() -> str | None:
    beside = Path(sys.executable).with_name("lint-imports")  # the venv's, next to its python
    return str(beside) if beside.exists() else shutil.which("lint-imports")


def test_import_contracts_hold():
    command = _lint_imports()
    if command is None:
        pytest.skip("import-linter is not installed (pip install import-linter)")
    done = subprocess.run([command, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"import contracts broken (run `lint-imports`):\n{done.stdout}{done.stderr}"


def test_core_modules_import_no_io_library():
    names = sorted(m.name for m in pkgutil.iter_modules(stacrrn.core.__path__, "stacrrn.core."))
    assert len(names) > 10
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {IO_LIBRARIES!r}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", f"core modules load {done.stdout.strip()}"
