"""Atomic files: everything is written to a hidden staging folder, then renamed into place."""

from __future__ import annotations

import os
import uuid
from contextlib import suppress
from pathlib import Path

from stacrrn.errors import OutputError

TMP_DIR = ".stacrrn-tmp"
"""Name of the hidden folder, beside the outputs, that holds files being written."""


def temporary_path(final: Path, suffix: str) -> Path:
    """A unique temporary path in the hidden folder beside ``final`` (created if needed).

    Raises
    ------
    OutputError
        If the folder cannot be created.
    """
    tmp_dir = final.parent / TMP_DIR
    try:
        tmp_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write to {final.parent}: {exc.strerror or exc}") from None
    return tmp_dir / f"{final.stem}.{uuid.uuid4().hex}{suffix}"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one.

    Raises
    ------
    OutputError
        If the file cannot be written.
    """
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    Raises
    ------
    OutputError
        If the file cannot be written.
    """
    tmp = temporary_path(path, ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def remove_temporary_folder(folder: Path) -> None:
    """Remove the hidden staging folder in ``folder`` if it is empty (left as is otherwise)."""
    with suppress(OSError):
        (folder / TMP_DIR).rmdir()


def absolute_path(path: str | os.PathLike[str]) -> str:
    """A local path made absolute (Dask workers may run in another folder); URLs and GDAL paths as given."""
    text = os.fspath(path)
    if "://" in text or text.startswith("/vsi"):
        return text
    return os.path.abspath(text)
