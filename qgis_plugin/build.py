"""Build the installable plugin zip: ``python qgis_plugin/build.py [DIST]`` -> ``DIST/stacrrn_qgis-<version>.zip``.

The zip holds the ``stacrrn_qgis/`` folder (what QGIS's "Install from ZIP" expects) without
caches; the plugin's version in ``metadata.txt`` must be stacrrn's (``stacrrn/_version.py``).
Standard library only, so any Python 3.11 builds it.
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "stacrrn_qgis"
SKIP = ("__pycache__", ".pyc", ".pyo")


def plugin_version() -> str:
    """The version in ``metadata.txt``, checked against stacrrn's.

    Raises
    ------
    SystemExit
        If the two differ.
    """
    metadata = configparser.ConfigParser()
    metadata.read(PACKAGE / "metadata.txt", encoding="utf-8")
    version = metadata["general"]["version"]
    source = (HERE.parent / "stacrrn" / "_version.py").read_text()
    project = ast.literal_eval(re.findall(r"__version__ = (.+)", source)[0])
    if version != project:
        raise SystemExit(f"metadata.txt has version {version} but stacrrn is {project}: make them agree")
    return version


def build(dist: Path) -> Path:
    """Write the zip into ``dist`` and return its path."""
    dist.mkdir(parents=True, exist_ok=True)
    target = dist / f"stacrrn_qgis-{plugin_version()}.zip"
    files = sorted(p for p in PACKAGE.rglob("*") if p.is_file() and not any(s in str(p) for s in SKIP))
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            zf.write(path, path.relative_to(HERE).as_posix())
    return target


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "dist")))
