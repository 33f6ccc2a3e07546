"""HTML tables of a model: summary, parameters, and the quality metrics it carries.

Models from older or newer versions hold more or fewer quality keys: every table is drawn
from what is present, and a missing key leaves its table (or column) out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from stacrrn.core.model import RRNModel
from stacrrn.report.html import fmt, heading, paragraph, records_table, table

CONSISTENCY_METRICS = ("mean_diff", "std_diff", "rmse", "block_mean_diff", "block_std_diff")
STAGES = (("before", "before"), ("after_affine", "after global"), ("after", "after"))
IMAGE_LISTS = ("mean_before", "mean_after", "std_before", "std_after")


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
        local_bands = q.get("local_bands")
        if isinstance(local_bands, list):
            rows.append(("bands with a local step", ", ".join(_label(model, labels, x) for x in local_bands) or "none"))
    else:
        rows.append(("block grid", "none (no local step)"))
    settings = q.get("settings")
    if isinstance(settings, dict):
        rows += [(f"setting: {k}", v) for k, v in settings.items() if v is not None]
    return rows


def _label(model: RRNModel, labels: Sequence[str], band: int) -> str:
    return labels[model.bands.index(band)] if band in model.bands else str(band)


def summary_table(model: RRNModel, labels: Sequence[str], kind: str, model_href: str) -> str:
    """The summary as a two-column table."""
    return table(("", ""), summary_rows(model, labels, kind, model_href), 2)


def parameters_table(model: RRNModel, labels: Sequence[str]) -> str:
    """Per image and band: gain, offset and, with a local step, the constant shift and field range."""
    g, local = model.global_fit, model.local_fit
    headers = ["image", "band", "gain", "offset"]
    if local is not None:
        headers += ["local shift", "field min", "field max"]
    rows = []
    for i, im in enumerate(model.images):
        for k, label in enumerate(labels):
            row: list[Any] = [im.name + (" (reference)" if i in model.references else ""), label]
            row += [float(g.gains[i, k]), float(g.offsets[i, k])]
            if local is not None:
                field = local.fields[i][k]
                row += [float(local.shifts[i, k]), float(np.nanmin(field)), float(np.nanmax(field))]
            rows.append(row)
    return table(headers, rows, 2)


def consistency_table(quality: dict[str, Any], labels: Sequence[str]) -> str:
    """Overlap consistency per metric and band, before -> after the global step -> after."""
    stages = [(key, title) for key, title in STAGES if isinstance(quality.get(key), dict)]
    if not stages:
        return ""
    rows = []
    for metric in CONSISTENCY_METRICS:
        if not any(metric in quality[key] for key, _ in stages):
            continue
        for k, label in enumerate(labels):
            values = [_at(quality[key].get(metric), k) for key, _ in stages]
            first, last = values[0], values[-1]
            change = None if not first or last is None or first is None else 100 * (last - first) / first
            rows.append([metric, label, *values, change])
    headers = ["metric", "band", *(title for _, title in stages), "change %"]
    return heading("overlap consistency (area-weighted RMS of differences)") + table(headers, rows, 2)


def _at(values: Any, k: int) -> Any:
    return values[k] if isinstance(values, list) and k < len(values) else None


def overlap_pixels_table(quality: dict[str, Any], labels: Sequence[str]) -> str:
    """Pixelwise overlap RMSE and MAE per band, before and after."""
    op = quality.get("overlap_pixels")
    if not isinstance(op, dict) or not op:
        return ""
    stages = [s for s in ("before", "after_affine", "after") if isinstance(op.get(s), dict)]
    metrics = sorted({m for s in stages for m in op[s]})
    rows = [[m, label, *(_at(op[s].get(m), k) for s in stages)] for m in metrics for k, label in enumerate(labels)]
    return heading("pixelwise overlap differences") + table(["metric", "band", *stages], rows, 2)


def images_table(quality: dict[str, Any], labels: Sequence[str]) -> str:
    """Per-image table (per date, sorted by date, for a time series); per-band lists shown in band order."""
    records = [r for r in quality.get("images", []) if isinstance(r, dict)]
    if not records:
        return ""
    dated = all(r.get("datetime") for r in records)
    if dated:
        records = sorted(records, key=lambda r: str(r["datetime"]))
    first = ["datetime", "name"] if dated else ["name"]
    title = "per date" if dated else "per image"
    note = paragraph(f"per-band values in band order: {', '.join(labels)}") if any(
        k in r for r in records for k in IMAGE_LISTS
    ) else ""  # fmt: skip
    return heading(title) + note + records_table(records, first)


def pairs_table(quality: dict[str, Any]) -> str:
    """Per overlapping pair: overlap, used and held-out pixels."""
    records = [r for r in quality.get("pairs", []) if isinstance(r, dict)]
    if not records:
        return ""
    rows = [{"pair": " - ".join(map(str, r.get("images", []))), **{k: v for k, v in r.items() if k != "images"}}
            for r in records]  # fmt: skip
    return heading("overlapping pairs") + records_table(rows, ["pair"])


def holdout_table(quality: dict[str, Any]) -> str:
    """Held-out validation per image and band: agreement before and after."""
    entries = [e for e in quality.get("holdout", []) if isinstance(e, dict)]
    if not entries:
        return ""
    rows = []
    for e in entries:
        for b in e.get("bands", []):
            row: dict[str, Any] = {"image": e.get("image"), "against": e.get("against"), "band": b.get("band")}
            for stage in ("before", "after"):
                row |= {f"{stage} {k}": v for k, v in (b.get(stage) or {}).items()}
            rows.append(row)
    return heading("held-out validation") + records_table(rows, ["image", "against"])


def per_name_table(title: str, data: Any, labels: Sequence[str]) -> str:
    """``{name: per-band list}`` or ``{name: {key: value or per-band list}}`` as a table."""
    if not isinstance(data, dict) or not data:
        return ""
    if all(isinstance(v, list) for v in data.values()):
        rows = [[name, *(_at(v, k) for k in range(len(labels)))] for name, v in data.items()]
        return heading(title) + table(["image", *labels], rows)
    records = [{"image": name, **v} for name, v in data.items() if isinstance(v, dict)]
    return heading(title) + paragraph(f"per-band values in band order: {', '.join(labels)}") + records_table(records)


def metrics_html(quality: dict[str, Any], labels: Sequence[str]) -> str:
    """Every metric table the model's quality holds (each left out when absent or malformed)."""
    parts: list[Callable[[], str]] = [
        lambda: consistency_table(quality, labels),
        lambda: overlap_pixels_table(quality, labels),
        lambda: images_table(quality, labels),
        lambda: pairs_table(quality),
        lambda: holdout_table(quality),
        lambda: per_name_table("fidelity to the input", quality.get("fidelity"), labels),
        lambda: per_name_table("clipped pixels (values outside the data type)", quality.get("clipped"), labels),
    ]
    out = []
    for part in parts:
        try:
            out.append(part())
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:  # a quality table of another shape
            out.append(paragraph(f"a metric table could not be drawn ({type(exc).__name__}: {exc})", "note"))
    return "".join(out) or paragraph("the model holds no quality metrics")
