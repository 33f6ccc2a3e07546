"""HTML tables of a model's quality metrics, each saying what its numbers are.

Three families of figures measure the overlaps, and every table names its family and stage:

- **from pass-1 moments** (``quality["before"]``/``["after_affine"]``: ``mean_diff``,
  ``std_diff``, ``rmse``): exact over the overlap pixels the fit used, but for the global
  gains and offsets only. The local fields do not enter them (``quality["after"]`` repeats
  the global figures), so they are shown "after the global step", never "after";
- **block-level** (``block_mean_diff``, ``block_std_diff``): from pass-1 block means of the
  overlaps, after the global step and after the whole model (local fields at block centres);
- **pixelwise, read from the rasters** (``quality["overlap_pixels"]``): RMSE and MAE of the
  overlaps' pixels, inputs and inputs corrected by the whole model.

Models from older or newer versions hold more or fewer keys: a missing key leaves its table
(or column) out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from stacrrn.report.html import caption, details, fmt, heading, matrix_table, paragraph, records_table, table

MOMENT_METRICS = (("mean_diff", "RMS mean difference"), ("std_diff", "RMS std difference"), ("rmse", "pixelwise RMSE"))
BLOCK_METRICS = (("block_mean_diff", "RMS block-mean difference"), ("block_std_diff", "RMS block-std difference"))
PIXEL_METRICS = (("rmse", "RMSE"), ("mae", "MAE"))
PER_BAND_PAIRS = (("mean", "mean_before", "mean_after"), ("std", "std_before", "std_after"))
IMAGE_LISTS = ("mean_before", "mean_after", "std_before", "std_after")
HOLDOUT_KEYS = ("mean_difference", "rmse", "correlation", "variance_ratio", "t_pvalue", "f_pvalue")
OPEN_ROWS = 20
"""Per-band tables of at most this many images are unfolded; longer ones start folded."""

MOMENTS_CAPTION = (
    "Per band, over every overlapping pair (weighted by its pixels): the RMS difference of the two images' "
    "means and standard deviations over the overlap, and their pixelwise RMSE. Exact, from pass 1's joint "
    "moments of the overlap pixels the fit used, for the global gains and offsets only: the local step does not "
    "enter these numbers (the pixelwise and block-level tables above include it)."
)
BLOCKS_CAPTION = (
    "Block-level: per band, over every block where two images overlap (weighted by its pixels), the RMS "
    "difference of the two images' block means and of their within-block standard deviations, from pass 1's "
    "block sums. {after}"
)
FIDELITY_CAPTION = "each output compared with its input over the pixels written (rounded and clipped)"
PIXELS_CAPTION = (
    "Pixelwise, read from the rasters where two images overlap (a pixel valid in both counts once per pair): "
    "before, the inputs; {after}, the inputs corrected by the model as pass 2 does, before rounding to the "
    "output data type."
)


def _at(values: Any, k: int) -> Any:
    return values[k] if isinstance(values, list) and k < len(values) else None


def _stage(quality: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = quality.get(key)
    return value if isinstance(value, dict) else None


def _change(before: Any, after: Any, k: int) -> float | None:
    """Per cent change of band ``k`` from ``before`` to ``after`` (``None`` when unknown or from 0)."""
    b, a = _at(before, k), _at(after, k)
    if not isinstance(b, int | float) or not isinstance(a, int | float) or not b:
        return None
    return 100.0 * (a - b) / b


def band_table(labels: Sequence[str], columns: Sequence[tuple[str, Any]]) -> str:
    """One row per band, one column per ``(header, per-band list)``; ``-`` where a list has no value."""
    rows = [[label, *(_at(values, k) for _, values in columns)] for k, label in enumerate(labels)]
    return table(["band", *(h for h, _ in columns)], rows)


def _with_change(columns: list[tuple[str, Any]], name: str, before: Any, after: tuple[str, Any], n: int) -> None:
    """Append the per cent change of ``name`` from before to ``after`` (its stage and values), when both are known."""
    stage, values = after
    if before is not None and values is not None:
        columns.append((f"{name} change %, before → {stage}", [_change(before, values, k) for k in range(n)]))


def moments_table(quality: dict[str, Any], labels: Sequence[str]) -> str:
    """Overlap agreement from pass-1 moments: before and after the global step (never the local one)."""
    before = _stage(quality, "before") or {}
    after = _stage(quality, "after_affine") or _stage(quality, "after") or {}
    columns: list[tuple[str, Any]] = []
    for key, name in MOMENT_METRICS:
        if key in before or key in after:
            columns += [(f"{name}, before", before.get(key)), (f"{name}, after global step", after.get(key))]
    if not columns:
        return ""
    _with_change(columns, "pixelwise RMSE", before.get("rmse"), ("after global step", after.get("rmse")), len(labels))
    title = "overlap agreement after the global step (exact, from pass-1 moments)"
    return heading(title) + caption(MOMENTS_CAPTION) + band_table(labels, columns)


def blocks_table(quality: dict[str, Any], labels: Sequence[str], local: bool = True) -> str:
    """Block-level overlap agreement: before, after the global step and after the whole model."""
    stages = [("before", "before"), ("after_affine", "after global step")]
    if local:
        stages.append(("after", "after global + local"))
    found = [(_stage(quality, key) or {}, title) for key, title in stages]
    columns: list[tuple[str, Any]] = []
    for key, name in BLOCK_METRICS:
        if any(key in stage for stage, _ in found):
            columns += [(f"{name}, {title}", stage.get(key)) for stage, title in found]
    if not columns:
        return ""
    first, last = found[0][0].get("block_mean_diff"), found[-1][0].get("block_mean_diff")
    _with_change(columns, "block-mean difference", first, (found[-1][1], last), len(labels))
    after = (
        "'After global + local' applies the local fields at the block centres, the scale the local step works at."
        if local
        else "The model has no local step."
    )
    return (
        heading("block-level overlap agreement (pass-1 block means)")
        + caption(BLOCKS_CAPTION.format(after=after))
        + band_table(labels, columns)
    )


def overlap_pixels_table(quality: dict[str, Any], labels: Sequence[str], local: bool = True) -> str:
    """Pixelwise overlap RMSE and MAE read from the rasters: the inputs and after the whole model."""
    op = quality.get("overlap_pixels")
    if not isinstance(op, dict) or not op:
        return ""
    whole = "after global + local" if local else "after global step"
    titles = {"before": "before (inputs)", "after_affine": "after global step", "after": whole}
    stages = [(op[s], titles[s]) for s in titles if isinstance(op.get(s), dict)]
    if not stages:
        return ""
    columns: list[tuple[str, Any]] = [("pixels compared", stages[0][0].get("pixels"))]
    for key, name in PIXEL_METRICS:
        columns += [(f"pixelwise {name}, {title}", stage.get(key)) for stage, title in stages]
    last = stages[-1]
    _with_change(columns, "pixelwise RMSE", stages[0][0].get("rmse"), (last[1], last[0].get("rmse")), len(labels))
    after = f"'{whole}'" + ("" if local else " (the model has no local step)")
    return (
        heading("pixelwise overlap differences (read from the rasters)")
        + caption(PIXELS_CAPTION.format(after=after))
        + band_table(labels, columns)
    )


def _pretty(key: str) -> str:
    return key.replace("_", " ")


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple)


def _per_band(
    title: str, names: Sequence[str], labels: Sequence[str], cells: Sequence[Sequence[Any]], unfold: bool = True
) -> str:
    """An images x bands table in a ``<details>``; its summary gives the range of the numbers in it.

    Unfolded when ``unfold`` and it has at most :data:`OPEN_ROWS` images.
    """
    numbers = [v for row in cells for v in row if isinstance(v, int | float) and not isinstance(v, bool)]
    span = f": {fmt(min(numbers))} to {fmt(max(numbers))}" if numbers else ""
    summary = f"{title}, per band ({len(names)} images x {len(labels)} bands){span}"
    return details(summary, matrix_table("image", names, labels, cells), open_=unfold and len(names) <= OPEN_ROWS)


def _list_tables(
    records: Sequence[dict[str, Any]], names: Sequence[str], labels: Sequence[str], unfold: bool = True
) -> str:
    """Every per-band list of the records as an images x bands table (before -> after pairs in one)."""
    keys = list(dict.fromkeys(k for r in records for k, v in r.items() if _is_list(v)))
    out = []
    for name, before, after in PER_BAND_PAIRS:
        if before in keys and after in keys:
            cells = [
                [f"{fmt(_at(r.get(before), k))} → {fmt(_at(r.get(after), k))}" for k in range(len(labels))]
                for r in records
            ]
            out.append(_per_band(f"{name} of the valid pixels, input → output", names, labels, cells, unfold))
            keys = [k for k in keys if k not in (before, after)]
    for key in keys:
        cells = [[_at(r.get(key), k) for k in range(len(labels))] for r in records]
        out.append(_per_band(_pretty(key), names, labels, cells, unfold))
    return "".join(out)


def _scalars(record: dict[str, Any]) -> dict[str, Any]:
    return {_pretty(k): v for k, v in record.items() if not _is_list(v) and not isinstance(v, dict)}


def images_table(quality: dict[str, Any], labels: Sequence[str]) -> str:
    """Per-image table (per date, sorted by date, for a time series); per-band lists as images x bands tables."""
    records = [r for r in quality.get("images", []) if isinstance(r, dict)]
    if not records:
        return ""
    dated = all(r.get("datetime") for r in records)
    if dated:
        records = sorted(records, key=lambda r: str(r["datetime"]))
    first = ["datetime", "name"] if dated else ["name"]
    names = [str(r.get("name", "")) for r in records]
    text = "valid pixels: valid in every band; valid share: of the image's footprint on the grid"
    if any(k in r for r in records for k in IMAGE_LISTS):
        text += "; means and standard deviations: pass 2's exact figures of input and output over the same pixels"
    body = records_table([_scalars(r) for r in records], first)
    return heading("per date" if dated else "per image") + caption(text) + body + _list_tables(records, names, labels)


def pairs_table(quality: dict[str, Any]) -> str:
    """Per overlapping pair: overlap, used and held-out pixels (pairs without overlap left out, and counted)."""
    records = [r for r in quality.get("pairs", []) if isinstance(r, dict)]
    if not records:
        return ""
    shown = [r for r in records if (r.get("overlap_pixels") or 0) > 0 or (r.get("used_pixels") or 0) > 0]
    hidden = len(records) - len(shown)
    text = (
        "overlap pixels: valid in both images; used pixels: those the fit used; held-out pixels: kept out of "
        "the fit to validate it"
    ) + (f". {hidden} of {len(records)} pairs do not overlap and are not listed" if hidden else "")
    rows = [{"pair": " - ".join(map(str, r.get("images", []))), **{_pretty(k): v for k, v in r.items()
             if k != "images"}} for r in shown]  # fmt: skip
    body = records_table(rows, ["pair"]) if rows else paragraph("no pair of images overlaps")
    return heading(f"overlapping pairs ({len(shown)})") + caption(text) + body


def holdout_table(quality: dict[str, Any]) -> str:
    """Held-out validation per image and band: agreement with the partners before and after the whole model."""
    entries = [e for e in quality.get("holdout", []) if isinstance(e, dict)]
    if not entries:
        return ""
    rows = []
    for e in entries:
        for b in e.get("bands", []):
            before, after = b.get("before") or {}, b.get("after") or {}
            row: dict[str, Any] = {"image": e.get("image"), "against": e.get("against"), "band": b.get("band"),
                                   "held-out pixels": before.get("n")}  # fmt: skip
            for key in HOLDOUT_KEYS:
                row |= {f"{_pretty(key)}, before": before.get(key), f"{_pretty(key)}, after": after.get(key)}
            rows.append(row)
    text = (
        "Pixels kept out of the fit (held-out overlap blocks), each image against its partners: before, the "
        "inputs; after, both corrected by the whole model. p-values: paired t-test of the means, F-test of "
        "the variances."
    )
    return heading("held-out validation") + caption(text) + records_table(rows, ["image", "against"])


def local_validation_table(quality: dict[str, Any], labels: Sequence[str]) -> str:
    """The local step's cross-validation per band: fields kept and held-out error, global vs global + local."""
    lv = quality.get("local_validation")
    if not isinstance(lv, dict) or not isinstance(lv.get("bands"), list):
        return ""
    rows = []
    for k, band in enumerate(lv["bands"]):
        images = [im for im in band.get("images", []) if isinstance(im, dict)]
        blocks = sum(int(im.get("heldout_blocks") or 0) for im in images)
        rows.append([
            labels[k] if k < len(labels) else str(band.get("band")),
            f"{sum(bool(im.get('kept')) for im in images)} of {len(images)}",
            blocks,
            _mean(images, "global_error"),
            _mean(images, "local_error"),
        ])  # fmt: skip
    headers = ["band", "images whose local field is kept", "held-out blocks",
               "held-out error, after global step (mean over images)",
               "held-out error, after global + local (mean over images)"]  # fmt: skip
    text = f"{lv.get('method', 'cross-validation')}; score: {lv.get('score', 'held-out error')}"
    return heading("local step validation (held-out overlap blocks)") + caption(text) + table(headers, rows)


def _mean(records: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [float(r[key]) for r in records if isinstance(r.get(key), int | float)]
    return sum(values) / len(values) if values else None


def per_name_table(title: str, data: Any, labels: Sequence[str], note: str = "") -> str:
    """``{name: per-band list}`` or ``{name: {key: value or per-band list}}`` as tables.

    The scalars of the second form make one table; each per-band list gets a folded images x
    bands table whose summary gives its range.
    """
    if not isinstance(data, dict) or not data:
        return ""
    names = [str(n) for n in data]
    if all(_is_list(v) for v in data.values()):
        cells = [[_at(list(v), k) for k in range(len(labels))] for v in data.values()]
        return heading(title) + (caption(note) if note else "") + _per_band(title, names, labels, cells)
    records = [{"image": name, **v} for name, v in data.items() if isinstance(v, dict)]
    scalars = [_scalars(r) for r in records]
    body = records_table(scalars) if any(len(s) > 1 for s in scalars) else ""
    lists = _list_tables(records, [str(r["image"]) for r in records], labels, unfold=False)
    return heading(title) + (caption(note) if note else "") + body + lists


def clipped_table(quality: dict[str, Any], labels: Sequence[str]) -> str:
    """Clipped pixels per image and band, or one line when none was clipped."""
    data = quality.get("clipped")
    if not isinstance(data, dict) or not data:
        return ""
    values = [v for per_band in data.values() if _is_list(per_band) for v in per_band]
    if values and all(v == 0 for v in values):
        return heading("clipped pixels") + paragraph("none: no corrected value fell outside the output data type")
    return per_name_table("clipped pixels", data, labels, "corrected values outside the output data type, clipped")


def metrics_html(quality: dict[str, Any], labels: Sequence[str], local: bool = True) -> str:
    """Every metric table the model's quality holds (each left out when absent or malformed).

    Parameters
    ----------
    quality
        The model's ``quality``.
    labels
        Label of each model band.
    local
        Whether the model has a local step (else "after" figures are named after the global step).
    """
    parts: list[Callable[[], str]] = [
        lambda: overlap_pixels_table(quality, labels, local),
        lambda: blocks_table(quality, labels, local),
        lambda: moments_table(quality, labels),
        lambda: local_validation_table(quality, labels),
        lambda: images_table(quality, labels),
        lambda: pairs_table(quality),
        lambda: holdout_table(quality),
        lambda: per_name_table("fidelity to the input", quality.get("fidelity"), labels, FIDELITY_CAPTION),
        lambda: clipped_table(quality, labels),
    ]
    out = []
    for part in parts:
        try:
            out.append(part())
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:  # a quality table of another shape
            out.append(paragraph(f"a metric table could not be drawn ({type(exc).__name__}: {exc})", "note"))
    return "".join(out) or paragraph("the model holds no quality metrics")
