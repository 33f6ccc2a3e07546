"""Whether stacrrn (and everything it needs) imports in the Python that QGIS runs.

The plugin always loads; when stacrrn cannot be imported its algorithms have no parameters,
refuse to run with :func:`missing`'s message, and the plugin shows it in the message bar.
"""

from __future__ import annotations

import functools
import importlib
import sys

MODULES = (
    "stacrrn",
    "stacrrn.errors",
    "stacrrn.pipeline.match",
    "stacrrn.pipeline.run",
    "stacrrn.pipeline.mask_products",
    "stacrrn.pipeline.mosaic.mosaic",
    "stacrrn.report",
)
"""What the algorithms call: importing them imports every dependency they use."""

DOCS = "docs/qgis.md"


@functools.cache
def missing() -> str | None:
    """``None`` when stacrrn imports, else a one-line message saying what is missing and where to read on.

    Returns
    -------
    str or None
        E.g. ``stacrrn is not installed in QGIS's Python 3.11 (No module named 'affine'): see docs/qgis.md``.
    """
    python = "Python {}.{}".format(*sys.version_info[:2])
    try:
        for name in MODULES:
            importlib.import_module(name)
    except ImportError as exc:
        return f"stacrrn is not installed in QGIS's {python} ({exc}): see {DOCS}"
    except Exception as exc:  # an edge: a broken install must not take QGIS's plugin loading down
        return f"stacrrn cannot be imported in QGIS's {python} ({type(exc).__name__}: {exc}): see {DOCS}"
    return None
