"""stacrrn for QGIS: a Processing provider over the stacrrn library (see docs/qgis.md)."""

from __future__ import annotations

from typing import Any


def classFactory(iface: Any) -> Any:
    """Plugin entry point QGIS calls with its interface."""
    from .plugin import StacrrnPlugin

    return StacrrnPlugin(iface)
