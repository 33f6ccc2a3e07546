"""Read the tables of a report's HTML back as text: headers and rows of cells."""

from __future__ import annotations

from html.parser import HTMLParser


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def tables(html: str) -> list[list[list[str]]]:
    """Every ``<table>`` of ``html`` as rows of cell texts (the header row first)."""
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def column(table: list[list[str]], header: str) -> list[str]:
    """The cells under ``header`` (the first row holds the headers)."""
    k = table[0].index(header)
    return [row[k] for row in table[1:]]
