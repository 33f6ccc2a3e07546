"""HTML tables of a model: summary and parameters (the quality metrics: :mod:`stacrrn.report.metrics`).

Models from older or newer versions hold more or fewer quality keys: every table is drawn
from what is present, and a missing key leaves its row out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stacrrn.core.model import RRNModel
from stacrrn.report.html import caption, details, fmt, matrix_table, paragraph, table
from stacrrn.report.metrics import OPEN_ROWS, metrics_html
from stacrrn.report.rasters import NO_CORRECTION, gain_spread

F64 = NDArray[np.float64]

__all__ = ["metrics_html", "parameters_table", "summary_rows", "summary_table"]


def _crs_name(crs: str) -> str:
    try:
        from rasterio.crs import CRS

        parsed = CRS.from_user_input(crs)
        epsg = parsed.to_epsg()
        return f"EPSG:{epsg}" if epsg else str(parsed.to_string())[:80]
    except Exception:  # an unparsable CRS is shown as given
        return crs[:80]


def summary_rows(model: RRNModel, labels: Sequence[str], kind: str, model_href: str) -> list[tuple[str, Any]]:
    """``(field, value)`` rows of the run's summary."""
    g, q = model.global_fit, model.quality
    rows: list[tuple[str, Any]] = [
        ("run type", "stacrrn match (local)" if kind == "match" else "stacrrn run (STAC)"),
        ("method", model.method),
        ("images", len(model.images)),
        ("bands", ", ".join(labels)),
        ("references", ", ".join(model.images[r].name for r in model.references) or "none (central tendency)"),
        ("model digest", model.digest()),
        ("model", model_href),
        ("grid", f"{model.grid.width} x {model.grid.height} px of {fmt(model.grid.resolution[0])} in "
                 f"{_crs_name(model.grid.crs)}"),
        ("connected components", len(g.components)),
        ("isolated images", ", ".join(model.images[i].name for i in g.isolated) or "none"),
    ]  # fmt: skip
    local = model.local_fit
    if local is not None:
        b = local.blocks
        size = f"{b.block_height * model.grid.resolution[1]:g} x {b.block_width * model.grid.resolution[0]:g}"
        rows.append(("block grid", f"{b.n_rows} x {b.n_cols} blocks of {b.block_height} x {b.block_width} px ({size})"))
        departs = gain_spread(local) > NO_CORRECTION
        corrected = [label for label, d in zip(labels, departs, strict=False) if d]
        rows.append((f"bands with local correction (a field beyond ±{NO_CORRECTION:g} of 1)",
                     ", ".join(corrected) or "none"))  # fmt: skip
    else:
        rows.append(("block grid", "none (no local step)"))
    settings = q.get("settings")
    if isinstance(settings, dict):
        rows += [(f"setting: {k}", v) for k, v in settings.items() if v is not None]
    return rows


def summary_table(model: RRNModel, labels: Sequence[str], kind: str, model_href: str) -> str:
    """The summary as a two-column table."""
    return table(("", ""), summary_rows(model, labels, kind, model_href), 2)


def parameters_table(model: RRNModel, labels: Sequence[str]) -> str:
    """The model's parameters as images x bands tables: gain, offset and, with a local step, the local fields.

    A local field is shown by its range (``min to max`` of its gains); fields within
    :data:`~stacrrn.report.rasters.NO_CORRECTION` of 1 everywhere read ``1``, and when every
    field is so, one line says there is no local correction instead of a table. The constant
    shifts get a table only when one is not 0. Tables of more than
    :data:`~stacrrn.report.metrics.OPEN_ROWS` images start folded.
    """
    g, local = model.global_fit, model.local_fit
    names = [im.name + (" (reference)" if i in model.references else "") for i, im in enumerate(model.images)]
    unfolded = len(names) <= OPEN_ROWS
    out = caption("corrected value = gain x input + offset (global step)")
    for title, values in (("gain", g.gains), ("offset", g.offsets)):
        out += details(f"{title} per image and band", matrix_table("image", names, labels, values.tolist()), unfolded)
    if local is None:
        return out + paragraph(f"method {model.method}: no local step")
    ranges = [[_field_range(f[k]) for k in range(len(labels))] for f in local.fields]
    if all(r == "1" for row in ranges for r in row):
        out += paragraph(f"local fields: every gain within ±{NO_CORRECTION:g} of 1 (no local correction)")
    else:
        out += caption(f"local field: smooth gain applied after the global step; range of its gains ('1': within "
                       f"±{NO_CORRECTION:g} of 1 everywhere)")  # fmt: skip
        out += details("local field range per image and band", matrix_table("image", names, labels, ranges), unfolded)
    if np.any(local.shifts != 0):
        shifts = matrix_table("image", names, labels, local.shifts.tolist())
        out += details("local constant shift per image and band", shifts, unfolded)
    return out


def _field_range(field: F64) -> str:
    """``min to max`` of a field's gains, ``1`` within :data:`NO_CORRECTION` of 1, ``-`` without any."""
    finite = field[np.isfinite(field)]
    if not finite.size:
        return "-"
    lo, hi = float(finite.min()), float(finite.max())
    if max(abs(lo - 1), abs(hi - 1)) <= NO_CORRECTION:
        return "1"
    return f"{fmt(lo)} to {fmt(hi)}"
