"""The progress callback the pipeline reports through (front ends draw it)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Called as ``progress(stage, done, total)`` while a pass runs."""

    def __call__(self, stage: str, done: int, total: int) -> None:
        """Report that ``done`` of ``total`` units of ``stage`` are finished."""


def no_progress(stage: str, done: int, total: int) -> None:
    """A :class:`Progress` that reports nothing."""
