"""Pass-1 statistics as bytes: a ``.npz`` archive of flat float64 and int64 arrays.

The merged statistics of a run (:class:`~stacrrn.core.statistics.Statistics`) and the chunk
moments of a serverless tile (:class:`~stacrrn.core.statistics.ChunkStatistics`, many per
tile) are stored as the arrays their ``to_arrays`` give, bit for bit, in a zip archive numpy
reads back (``np.load``, no pickle). A handful of arrays holds any number of images and
pairs, so a series of 10^3 dates is written and read in about the time of copying its bytes.

Beside the arrays, each archive holds its format name and version, what it holds
(``statistics`` or ``chunks``) and the fingerprint of the plan it was computed for. Reading
gives ``None`` for a missing, damaged, older-format or other-plan archive, never an error:
the statistics are then computed again.

The members are stored uncompressed, as ``np.savez`` stores them. Size, write and read time
measured with ``benchmarks/bench_statistics_store.py`` (4 bands, 32 x 32 blocks, each date
paired with its 2 nearest; medians on a loaded 2-core machine):

=========  ======================  ======================  ======================
dates      JSON (before)           npz, stored             npz, DEFLATE level 1
=========  ======================  ======================  ======================
50 (real)  23.5 MB, 1.1 s, 1.0 s   17.2 MB, 0.07, 0.05 s   7.7 MB, 0.39, 0.11 s
200        107 MB, 10 s, 7.5 s     70 MB, 0.55, 0.44 s     37 MB, 3.4, 1.2 s
1000       539 MB, 54 s, 34 s      353 MB, 0.96, 0.55 s    186 MB, 9.7, 2.9 s
=========  ======================  ======================  ======================

DEFLATE halves the archive but compresses at 20-40 MB/s, longer than moving the bytes it
saves to disk or S3 takes; ``np.savez_compressed``'s level 6 writes as slowly as JSON for
5 % less than level 1. :func:`encode` takes a ``level`` for a slow link; the reader reads
either.
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stacrrn.core.statistics import ChunkStatistics, Statistics
from stacrrn.io.files import atomic_write_bytes

log = logging.getLogger(__name__)

FORMAT = "stacrrn-statistics"
"""Format name stored in every archive."""

VERSION = 1
"""Format version; archives of another version are not read (the statistics are recomputed)."""

STATISTICS = "statistics"
CHUNKS = "chunks"


Arrays = dict[str, NDArray[Any]]


def encode(arrays: Mapping[str, NDArray[Any]], fingerprint: str, kind: str, level: int | None = None) -> bytes:
    """An ``.npz`` archive of ``arrays`` tagged with the format, its version, ``kind`` and ``fingerprint``.

    Parameters
    ----------
    arrays
        Name -> array (numbers only: the archive is read without pickle).
    fingerprint
        The plan's fingerprint.
    kind
        What the arrays hold (:data:`STATISTICS` or :data:`CHUNKS`).
    level
        DEFLATE level of the members (1-9, as ``np.savez_compressed`` with 6); ``None`` (the
        default) stores them as they are, as ``np.savez``.

    Returns
    -------
    bytes
        The archive, which ``np.load`` reads.
    """
    meta = {"meta.format": FORMAT, "meta.version": VERSION, "meta.kind": kind, "meta.fingerprint": fingerprint}
    buffer = io.BytesIO()
    method = zipfile.ZIP_STORED if level is None else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buffer, "w", compression=method, compresslevel=level, allowZip64=True) as archive:
        for name, value in [*meta.items(), *arrays.items()]:
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
    return buffer.getvalue()


def decode(data: bytes | None, fingerprint: str, kind: str) -> Arrays | None:
    """The arrays of an archive :func:`encode` wrote for ``fingerprint`` and ``kind``, else ``None``.

    ``None`` for no data, data that is not such an archive (damaged, truncated, an older JSON
    cache), another format version, or another plan's fingerprint. The tags are checked
    before any array is read.
    """
    if not data:
        return None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            if not _tags_match(archive, fingerprint, kind):
                return None
            return {name: archive[name] for name in archive.files if not name.startswith("meta.")}
    except Exception as exc:  # damage makes zipfile, zlib and numpy's header parser raise a dozen types
        _damaged(exc)
        return None


def _damaged(exc: Exception) -> None:
    log.warning("a statistics archive is damaged (%s: %s); the statistics are computed again", type(exc).__name__, exc)


def _tags_match(archive: Mapping[str, NDArray[Any]], fingerprint: str, kind: str) -> bool:
    want = {"meta.format": FORMAT, "meta.version": VERSION, "meta.kind": kind, "meta.fingerprint": fingerprint}
    return all(name in archive and archive[name].shape == () and archive[name].item() == v for name, v in want.items())


def statistics_to_bytes(stats: Statistics, fingerprint: str, level: int | None = None) -> bytes:
    """Merged statistics as an archive (:func:`encode` of :meth:`Statistics.to_arrays`)."""
    return encode(stats.to_arrays(), fingerprint, STATISTICS, level)


def statistics_from_bytes(data: bytes | None, fingerprint: str) -> Statistics | None:
    """The statistics :func:`statistics_to_bytes` stored for ``fingerprint``, or ``None`` (see :func:`decode`)."""
    arrays = decode(data, fingerprint, STATISTICS)
    if arrays is None:
        return None
    try:
        return Statistics.from_arrays(arrays)
    except (KeyError, ValueError, TypeError, IndexError) as exc:  # tags right, arrays not: damaged
        _damaged(exc)
        return None


def write_statistics(path: Path, stats: Statistics, fingerprint: str) -> None:
    """Store statistics at ``path`` atomically (readers see the old file or the whole new one).

    Raises
    ------
    OutputError
        If the file cannot be written.
    """
    atomic_write_bytes(path, statistics_to_bytes(stats, fingerprint))


def read_statistics(path: Path, fingerprint: str) -> Statistics | None:
    """The statistics stored at ``path`` for ``fingerprint``; ``None`` if missing, unreadable or another plan's."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return statistics_from_bytes(data, fingerprint)


def chunks_to_bytes(indices: Sequence[int], chunks: Sequence[ChunkStatistics], fingerprint: str) -> bytes:
    """The moments of many chunks (chunk ``indices[k]`` has ``chunks[k]``) as one archive.

    Each array of :meth:`ChunkStatistics.to_arrays` is concatenated over the chunks along its
    first axis, with the number of rows each chunk gave in ``chunks.rows`` ``(chunks, names)``
    (names in ``chunks.names``): a tile of any number of chunks is as many arrays as one chunk.
    """
    parts = [c.to_arrays() for c in chunks]
    empty = ChunkStatistics().to_arrays()  # the same names, whatever the chunk
    names = list(empty)
    rows = np.array([[p[n].shape[0] for n in names] for p in parts], dtype=np.int64).reshape(-1, len(names))
    arrays: Arrays = {
        "chunks.index": np.asarray(indices, dtype=np.int64).reshape(len(parts)),
        "chunks.names": np.array(names, dtype=str),
        "chunks.rows": rows,
    }
    for name in names:
        arrays[name] = _concatenated([p[name] for p in parts] or [empty[name]])
    return encode(arrays, fingerprint, CHUNKS)


def chunks_from_bytes(data: bytes | None, fingerprint: str) -> tuple[list[int], list[ChunkStatistics]] | None:
    """Chunk indices and moments :func:`chunks_to_bytes` stored for ``fingerprint``, or ``None``."""
    arrays = decode(data, fingerprint, CHUNKS)
    if arrays is None:
        return None
    try:
        return _split_chunks(arrays)
    except (KeyError, ValueError, TypeError, IndexError) as exc:  # tags right, arrays not: damaged
        _damaged(exc)
        return None


def _concatenated(parts: list[NDArray[Any]]) -> NDArray[Any]:
    """Parts joined along their first axis; empty parts (whose other axes may be unknown, ``(0, 0)``) skipped."""
    full = [p for p in parts if p.shape[0]]
    return np.concatenate(full) if full else parts[0]


def _split_chunks(arrays: Mapping[str, NDArray[Any]]) -> tuple[list[int], list[ChunkStatistics]]:
    """Inverse of the concatenation in :func:`chunks_to_bytes`."""
    indices = [int(k) for k in arrays["chunks.index"].tolist()]
    names = [str(n) for n in arrays["chunks.names"].tolist()]
    rows = arrays["chunks.rows"]
    if rows.shape != (len(indices), len(names)) or (rows < 0).any():
        raise ValueError(f"row counts {rows.shape} for {len(indices)} chunks of {len(names)} arrays")
    ends = np.cumsum(rows, axis=0)
    if indices and any(int(ends[-1, k]) != arrays[n].shape[0] for k, n in enumerate(names)):
        raise ValueError("row counts do not add up to the stored arrays")
    starts = ends - rows
    chunks = [
        ChunkStatistics.from_arrays({n: arrays[n][starts[c, k] : ends[c, k]] for k, n in enumerate(names)})
        for c in range(len(indices))
    ]
    return indices, chunks
