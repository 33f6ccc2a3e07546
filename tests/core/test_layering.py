import subprocess
import sys


def test_core_imports_no_io_library():
    code = (
        "import sys, stacrrn.core.statistics, stacrrn.core.global_model, stacrrn.core.local_model, "
        "stacrrn.core.global_local, stacrrn.core.metrics, stacrrn.core.model, stacrrn.core.correct\n"
        "bad = [m for m in ('rasterio', 'pystac', 'typer', 'rich') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
