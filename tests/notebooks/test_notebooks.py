"""Every notebook in notebooks/ runs top to bottom without an error.

Each notebook is executed with nbclient in a temporary working directory (its outputs land
there) by a ``python3`` kernel that is this interpreter: the kernelspec is written into a
temporary directory that ``JUPYTER_PATH`` puts first, so a fresh ``make setup`` venv needs no
``jupyter kernelspec install`` and no other Python on the machine is picked up. The kernel
gets dummy AWS credentials and no proxy variables (the notebooks start their own loopback S3
and STAC API on 127.0.0.1 and free ports, so two notebooks can run side by side).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SHARED, needs_shared

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(scope="session")
def jupyter_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding a ``python3`` kernelspec that launches ``sys.executable``."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    kernel = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (stacrrn)",
        "language": "python",
    }
    (spec / "kernel.json").write_text(json.dumps(kernel))
    return root


@pytest.fixture
def kernel_env(monkeypatch: pytest.MonkeyPatch, jupyter_path: Path, tmp_path: Path) -> None:
    """The environment the kernel inherits: its kernelspec, dummy AWS keys, no proxies."""
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_path))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / ".jupyter-runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / ".ipython"))
    monkeypatch.setenv("MPLBACKEND", "agg")
    monkeypatch.setenv("STACRRN_SHARED_DATA", str(SHARED))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for name in PROXIES:
        monkeypatch.delenv(name, raising=False)


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 3, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, path.name
    assert all(not c.outputs and c.execution_count is None for c in code), f"clear the outputs of {path.name}"


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=needs_shared if "STACRRN_SHARED_DATA" in p.read_text() else ()) for p in NOTEBOOKS],
    ids=[p.stem for p in NOTEBOOKS],
)
@pytest.mark.usefixtures("kernel_env")
def test_notebook_runs_without_errors(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first cell that fails
    print(f"{path.name}: {time.perf_counter() - start:.1f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
