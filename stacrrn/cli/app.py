"""The ``stacrrn`` command: thin typer front ends over :mod:`stacrrn.pipeline`.

Commands live in :mod:`stacrrn.cli.local` (``match``), :mod:`stacrrn.cli.stac` (``search``,
``run``, ``catalog``), :mod:`stacrrn.cli.masking` (``clouds``, ``pif``), :mod:`stacrrn.cli.mosaic` (``seamlines``,
``mosaic``),
:mod:`stacrrn.cli.report` (``report``) and :mod:`stacrrn.cli.demo` (``demo``); importing them registers them.
"""

from __future__ import annotations

from stacrrn.cli import demo, local, masking, mosaic, report, stac
from stacrrn.cli.common import app

__all__ = ["app", "demo", "local", "main", "masking", "mosaic", "report", "stac"]


def main() -> None:
    """Entry point of the ``stacrrn`` console script."""
    app()
