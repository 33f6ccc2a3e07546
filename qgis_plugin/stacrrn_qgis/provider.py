"""The "stacrrn" Processing provider."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .base import ICON, StacrrnAlgorithm
from .dependencies import missing
from .masks import CloudMasksAlgorithm, PifAlgorithm
from .match import MatchAlgorithm
from .mosaic import MosaicAlgorithm, SeamlinesAlgorithm
from .report import ReportAlgorithm
from .stac import StacRunAlgorithm, StacSearchAlgorithm

ALGORITHMS: tuple[type[StacrrnAlgorithm], ...] = (
    MatchAlgorithm,
    StacSearchAlgorithm,
    StacRunAlgorithm,
    CloudMasksAlgorithm,
    PifAlgorithm,
    SeamlinesAlgorithm,
    MosaicAlgorithm,
    ReportAlgorithm,
)


class StacrrnProvider(QgsProcessingProvider):
    """stacrrn's algorithms in the Processing Toolbox (ids ``stacrrn:<name>``)."""

    def id(self) -> str:
        """Provider id: algorithm ids are ``stacrrn:<name>``."""
        return "stacrrn"

    def name(self) -> str:
        """Toolbox title."""
        return "stacrrn"

    def longName(self) -> str:
        """Title with the library's version."""
        if missing() is not None:
            return "stacrrn (not installed)"
        import stacrrn

        return f"stacrrn {stacrrn.__version__}: relative radiometric normalization"

    def icon(self) -> QIcon:
        """The stacrrn icon."""
        return QIcon(ICON)

    def warningMessage(self) -> str:
        """Why the algorithms cannot run (stacrrn or a dependency is missing), else empty."""
        return missing() or ""

    def loadAlgorithms(self) -> None:
        """Add one instance of every algorithm."""
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())
