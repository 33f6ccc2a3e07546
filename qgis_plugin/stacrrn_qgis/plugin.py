"""The plugin object QGIS loads: it registers the stacrrn Processing provider."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication

from .dependencies import missing
from .provider import StacrrnProvider


class StacrrnPlugin:
    """Adds the stacrrn provider to the Processing Toolbox, and says so when stacrrn is missing.

    Parameters
    ----------
    iface
        QGIS's ``QgisInterface`` (``None`` headless).
    """

    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.provider: StacrrnProvider | None = None

    def initProcessing(self) -> None:
        """Register the provider (called by QGIS for plugins with ``hasProcessingProvider=yes``)."""
        if self.provider is None:
            self.provider = StacrrnProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        """Register the provider; show in the message bar why it cannot run, if stacrrn is missing."""
        self.initProcessing()
        problem = missing()
        if problem is not None and self.iface is not None:
            self.iface.messageBar().pushWarning("stacrrn", problem)

    def unload(self) -> None:
        """Remove the provider."""
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
