"""A self-contained HTML page from sections: inline CSS, images as base64 PNG data URIs.

Every piece of text goes through :func:`html.escape`; the page loads nothing from anywhere.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1180px;
padding:1em 2em;color:#222;background:#fff}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #bbb}
nav a{margin-right:1em}table{border-collapse:collapse;margin:.3em 0 1.2em;font-size:.85em}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:right;white-space:nowrap}
th{background:#eee;white-space:normal;vertical-align:bottom}td.t,th.t{text-align:left}
.scroll{overflow-x:auto;max-width:100%}
details{margin:.3em 0 .8em}summary{cursor:pointer;margin:.2em 0}
img{max-width:100%;height:auto;display:block;margin:.5em 0}.note{color:#8a5300}.cap{color:#444;font-size:.9em}
"""


@dataclass(frozen=True)
class Section:
    """One ``<h2>`` section: a stable ``id`` (the anchor), a title and its body HTML."""

    id: str
    title: str
    body: str


def paragraph(text: str, cls: str | None = None) -> str:
    """An escaped ``<p>``."""
    attr = f' class="{escape(cls)}"' if cls else ""
    return f"<p{attr}>{escape(text)}</p>"


def heading(text: str) -> str:
    """An escaped ``<h3>``."""
    return f"<h3>{escape(text)}</h3>"


def image(png: bytes, alt: str) -> str:
    """An ``<img>`` embedding ``png`` as a data URI."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'


def fmt(value: Any) -> str:
    """Compact text of a table cell: numbers to 4 significant digits, lists joined, ``-`` for none or NaN.

    Infinities read ``∞`` and ``-∞``: a page never shows the words ``nan`` or ``inf``.
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-" if math.isnan(value) else ("∞" if value > 0 else "-∞")
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], text_columns: int = 1) -> str:
    """An HTML table; the first ``text_columns`` columns are left-aligned text, the others numbers.

    Without any non-empty header the table has no header row.
    """

    def cell(tag: str, k: int, value: Any) -> str:
        cls = ' class="t"' if k < text_columns else ""
        return f"<{tag}{cls}>{escape(fmt(value))}</{tag}>"

    head = "".join(cell("th", k, h) for k, h in enumerate(headers))
    thead = f"<thead><tr>{head}</tr></thead>" if any(headers) else ""
    body = "".join("<tr>" + "".join(cell("td", k, v) for k, v in enumerate(r)) + "</tr>" for r in rows)
    return f'<div class="scroll"><table>{thead}<tbody>{body}</tbody></table></div>'


def caption(text: str) -> str:
    """An escaped ``<p class="cap">``: what the numbers of the table below are."""
    return paragraph(text, "cap")


def details(summary: str, body: str, open_: bool = False) -> str:
    """A ``<details>`` block: ``summary`` always shown, ``body`` when unfolded (or ``open_``)."""
    return f"<details{' open' if open_ else ''}><summary>{escape(summary)}</summary>{body}</details>"


def matrix_table(corner: str, rows: Sequence[str], columns: Sequence[str], values: Sequence[Sequence[Any]]) -> str:
    """A rows x columns table (e.g. images x bands) with ``corner`` over the row names."""
    return table([corner, *columns], [[name, *row] for name, row in zip(rows, values, strict=True)])


def records_table(records: Sequence[dict[str, Any]], first: Sequence[str] = ()) -> str:
    """A table of dicts: one row each, one column per key (``first`` keys leading), blanks for missing keys."""
    keys = [k for k in first if any(k in r for r in records)]
    for r in records:
        keys += [k for k in r if k not in keys]
    return table(keys, [[r.get(k) for k in keys] for r in records], max(len([k for k in first if k in keys]), 1))


def page(title: str, sections: Sequence[Section], subtitle: str = "") -> str:
    """The whole HTML document: title, a table of contents and the sections."""
    nav = "".join(f'<a href="#{escape(s.id)}">{escape(s.title)}</a>' for s in sections)
    body = "".join(f'<section><h2 id="{escape(s.id)}">{escape(s.title)}</h2>{s.body}</section>' for s in sections)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f"{paragraph(subtitle) if subtitle else ''}<nav>{nav}</nav>{body}</body></html>\n"
    )
