"""Which selected band is blue, red, NIR...: spectral roles for cloud tests and NDVI PIFs.

STAC items name their bands (``eo:common_name``) and carry the scale/offset to reflectance
(``raster:bands``); for local rasters the user names them (``--band-names``) and gives the
scaling (``--reflectance-scale/--reflectance-offset``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from stacrrn.errors import InputError

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class SpectralBands:
    """Common names of the model's bands (``None`` where unknown) and the reflectance scaling.

    Attributes
    ----------
    names
        ``eo:common_name`` per model band (``blue``, ``green``, ``red``, ``nir``, ``nir08``...).
    labels
        How the user selected the bands (for messages).
    scaling
        ``(scale, offset)``: reflectance = value * scale + offset; ``None`` if unknown.
    """

    names: tuple[str | None, ...]
    labels: tuple[str, ...]
    scaling: tuple[float, float] | None

    @classmethod
    def named(
        cls, names: Sequence[str] | None, labels: Sequence[str], scaling: tuple[float, float] | None
    ) -> SpectralBands:
        """Roles given by the user, one name per model band.

        Raises
        ------
        InputError
            If the number of names differs from the number of bands.
        """
        if names is not None and len(names) != len(labels):
            raise InputError(
                f"--band-names lists {len(names)} name(s) for {len(labels)} band(s) ({', '.join(labels)}); "
                "give one common name per band, e.g. blue,green,red,nir"
            )
        return cls(tuple(names or [None] * len(labels)), tuple(labels), scaling)

    def find(self, role: str, purpose: str) -> int:
        """Position of the band with common name ``role`` (``nir`` also matches ``nir08``).

        Raises
        ------
        InputError
            If no band has that role.
        """
        for k, name in enumerate(self.names):
            if name == role or (role == "nir" and name in ("nir08", "nir09")):
                return k
        raise InputError(
            f"{purpose} needs a band with eo:common_name {role!r} among the selected bands "
            f"({', '.join(self.labels)}); select one (local files: --band-names)"
        )

    def reflectance(self, values: F64, purpose: str) -> F64:
        """``values`` turned into reflectance.

        Raises
        ------
        InputError
            If the scaling is unknown.
        """
        if self.scaling is None:
            raise InputError(
                f"{purpose} needs reflectance: the bands carry no raster:bands scale/offset; "
                "pass --reflectance-scale (and --reflectance-offset)"
            )
        scale, offset = self.scaling
        return values * scale + offset

    def check(self, roles: Sequence[str], purpose: str) -> None:
        """Fail early unless every role is present and the scaling known."""
        for role in roles:
            self.find(role, purpose)
        self.reflectance(np.zeros(1), purpose)
