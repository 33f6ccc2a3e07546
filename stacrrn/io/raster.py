"""Reading rasters: open and validate inputs, read windows natively or on the common grid.

Reads on the common grid return float64 values ``(bands, rows, cols)`` and a validity
mask ``(rows, cols)``: a pixel counts for the statistics when every selected band is valid
(not nodata, not masked, finite). Native reads keep per-band masks, so that output pixels
are nodata exactly where the input's were. Inputs already aligned with the common grid are read directly; others
are resampled on the fly through a GDAL warped VRT, one window at a time.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import rasterio
from affine import Affine
from numpy.typing import NDArray
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window

from stacrrn.errors import BandMismatchError, MissingAssetError, MissingCRSError, UnreadableRasterError
from stacrrn.io.hrefs import redact_href, redact_text
from stacrrn.io.retry import is_missing, is_transient, retrying
from stacrrn.types import Box, Grid

F64 = NDArray[np.float64]
T = TypeVar("T")
Mask = NDArray[np.bool_]


@dataclass(frozen=True)
class RasterInfo:
    """What stacrrn needs to know about an input raster."""

    path: str
    name: str
    count: int
    dtype: str
    nodata: float | None
    crs: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int
    alpha: int | None = None
    has_mask: bool = False

    @property
    def data_bands(self) -> list[int]:
        """1-based indexes of the bands holding data (all but an alpha band)."""
        return [b for b in range(1, self.count + 1) if b != self.alpha]

    @property
    def grid(self) -> Grid:
        """The raster's own pixel grid."""
        return Grid(self.crs, self.transform, self.width, self.height)


def _raster_name(path: str) -> str:
    return Path(path.rstrip("/")).name.rsplit(".", 1)[0]


def open_raster(path: str | os.PathLike[str]) -> RasterInfo:
    """Open a raster and check it can be normalized.

    Parameters
    ----------
    path
        Local path or GDAL-readable URL.

    Returns
    -------
    RasterInfo
        Shape, type, nodata and georeferencing of the raster.

    Raises
    ------
    UnreadableRasterError
        If the file does not exist or GDAL cannot decode it.
    MissingCRSError
        If the raster has no coordinate reference system, or a projected one PROJ cannot
        transform (a made-up or unknown projection).

    Notes
    -----
    Messages name the raster by :func:`~stacrrn.io.hrefs.redact_href` of ``path``: a signed
    URL's query string is never repeated.
    """
    p = os.fspath(path)
    probe_local_sidecars(p)
    try:
        return _remote(p, "open", lambda: _open_info(p))
    except (RasterioError, UnicodeDecodeError) as exc:  # UnicodeDecodeError: a CRS or tag that is not UTF-8
        first = (str(exc).splitlines()[0] if str(exc) else type(exc).__name__).removeprefix(f"{p}: ")
        kind = MissingAssetError if is_missing(first) else UnreadableRasterError
        raise kind(f"cannot read {redact_href(p)}: {redact_text(first)}") from None


NETWORK_PREFIXES = ("/vsis3/", "/vsicurl/", "/vsigs/", "/vsiaz/", "/vsiadls/", "/vsioss/", "/vsiswift/", "/vsiwebhdfs/")
"""GDAL's network file systems (rasterio opens ``s3://`` and ``https://`` through them)."""

REMOTE_PREFIXES = (*NETWORK_PREFIXES, "http", "s3://")
"""GDAL paths read over the network: their reads are retried (:mod:`stacrrn.io.retry`)."""


def remote_fault(exc: BaseException) -> bool:
    """A fault of a remote read worth another try: transient, or a block GDAL could not read whole.

    GDAL retries HTTP errors itself but not a transfer cut short; it then reports a read or
    decode failure of the block. Read again, the block arrives whole, or the file really is
    corrupt and the last try says so.
    """
    text = str(exc).lower()
    return is_transient(exc) or any(w in text for w in ("read failed", "tiffread", "ireadblock", "failed to read"))


def is_remote(path: str) -> bool:
    """True if GDAL reads ``path`` over the network."""
    return path.startswith(REMOTE_PREFIXES)


def _remote(path: str, what: str, fn: Callable[[], T]) -> T:
    """``fn()``, retried on :func:`remote_fault` when ``path`` is read over the network."""
    if not is_remote(path):
        return fn()
    return retrying(f"{what} {redact_href(path)}", fn, remote_fault, forget_remote_reads)


@functools.cache
def _gdal() -> ctypes.CDLL | None:
    """The GDAL library rasterio uses in this process, if it can be found (``/proc/self/maps``).

    Other packages may load their own GDAL (pyogrio's wheel does): rasterio's own copy, from
    its wheel's ``rasterio.libs``, comes first; a system GDAL is the one all packages share.
    """
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/libgdal" in line}
    except OSError:
        return None
    wheel = os.path.dirname(rasterio.__file__) + ".libs"
    ours = sorted(paths, key=lambda path: (not path.startswith(wheel), "site-packages" in path, path))
    return ctypes.CDLL(ours[0]) if ours else None


_GdalHandler = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_int, ctypes.c_char_p)
"""GDAL's ``CPLErrorHandler``: ``void (CPLErr eErrClass, CPLErrorNum nError, const char *pszErrorMsg)``."""

GDAL_LEVELS = {1: logging.DEBUG, 2: logging.WARNING, 3: logging.WARNING, 4: logging.CRITICAL}
"""Python logging levels of GDAL's ``CE_Debug``, ``CE_Warning``, ``CE_Failure`` and ``CE_Fatal``: a
failure is a warning of the library's; whether it is an error is stacrrn's to say (and raise)."""

GDAL_LOGGER = "gdal"
"""Logger of GDAL and PROJ messages issued where rasterio has no handler of its own in place."""


def _log_gdal_message(err_class: int, err_no: int, message: bytes | None) -> None:
    text = (message or b"").decode("utf-8", "replace")
    logging.getLogger(GDAL_LOGGER).log(GDAL_LEVELS.get(err_class, logging.INFO), "%s (CPLE %d)", text, err_no)


_GDAL_HANDLER = _GdalHandler(_log_gdal_message)  # module-level: GDAL keeps a pointer to it
_gdal_handler_lock = threading.Lock()


@contextmanager
def gdal_messages_logged() -> Iterator[None]:
    """Send GDAL's (and PROJ's, through GDAL) errors and warnings to the ``gdal`` logger while the block runs.

    rasterio routes GDAL messages to Python logging only inside its ``rasterio.Env``, which
    is thread-local: GDAL calls outside one (``CRS.from_user_input`` in any thread, reads in
    worker threads) fall back to GDAL's global handler, which prints ``ERROR 1: PROJ: ...``
    straight to stderr. This installs a global handler (``CPLSetErrorHandler``) that logs
    instead, and restores the previous one afterwards; rasterio's thread-local handlers keep
    precedence where they are in place. Without a GDAL library found (see :func:`_gdal`),
    nothing changes.
    """
    lib = _gdal()
    if lib is None or not hasattr(lib, "CPLSetErrorHandler"):
        yield
        return
    lib.CPLSetErrorHandler.restype = ctypes.c_void_p
    lib.CPLSetErrorHandler.argtypes = [ctypes.c_void_p]
    with _gdal_handler_lock:
        previous = lib.CPLSetErrorHandler(ctypes.cast(_GDAL_HANDLER, ctypes.c_void_p))
    try:
        yield
    finally:
        with _gdal_handler_lock:
            lib.CPLSetErrorHandler(previous)


def forget_remote_reads() -> None:
    """Drop what GDAL's ``/vsicurl/`` cache holds, so that the next read fetches again.

    GDAL keeps the bytes of a cut transfer in its cache and reads them back on every later
    try: a retry must clear them first (``VSICurlClearCache``).
    """
    lib = _gdal()
    if lib is not None and hasattr(lib, "VSICurlClearCache"):
        lib.VSICurlClearCache()


READDIR_OPTION = "GDAL_DISABLE_READDIR_ON_OPEN"


def _set_path_option(prefix: str, value: str) -> bool:
    """GDAL's ``READDIR_OPTION`` for paths under ``prefix`` (``VSISetPathSpecificOption``); False without it."""
    lib = _gdal()
    if lib is None or not hasattr(lib, "VSISetPathSpecificOption"):
        return False
    lib.VSISetPathSpecificOption.argtypes = [ctypes.c_char_p] * 3
    lib.VSISetPathSpecificOption(os.fsencode(prefix), READDIR_OPTION.encode(), value.encode())
    return True


def list_no_remote_folders() -> None:
    """Have GDAL take a remote raster's folder as empty when it opens it.

    On open GDAL lists the raster's folder for sidecar files (``.msk`` masks, ``.tfw`` world
    files, ``.aux.xml``, ``.ovr`` overviews, imagery metadata). In a bucket that is a LIST
    request per open, for files a COG does not have, so remote folders are taken as empty
    (``EMPTY_DIR``) for GDAL's network file systems only, as a path-specific option. Set
    process-wide instead, as stacrrn did before, it hid local sidecars too: a local GeoTIFF's
    ``.msk`` mask read as all valid, its ``.tfw`` georeferencing as none. A
    ``GDAL_DISABLE_READDIR_ON_OPEN`` in the environment is left to apply everywhere; without
    path-specific options (GDAL < 3.6, or GDAL not found), the variable is set process-wide.
    """
    if READDIR_OPTION in os.environ:
        return
    if not all([_set_path_option(prefix, "EMPTY_DIR") for prefix in NETWORK_PREFIXES]):
        os.environ[READDIR_OPTION] = "EMPTY_DIR"


def probe_local_sidecars(path: str) -> None:
    """Have GDAL look for the sidecar files of the rasters in ``path``'s local folder one by one, not by listing it.

    Listing a folder costs in proportion to its files, on every open: 1.3 ms per open among
    1024 scenes, and a job opens each input several times (pass 1, the overlaps, pass 2).
    ``TRUE`` finds the same sidecars with a few ``stat`` calls. Set once per folder, as a
    path-specific option, unless ``GDAL_DISABLE_READDIR_ON_OPEN`` is in the environment;
    remote paths are left to :func:`list_no_remote_folders`.
    """
    if READDIR_OPTION in os.environ or is_remote(path):
        return
    folders = {os.path.dirname(os.path.abspath(path)), os.path.dirname(path)} - {""}
    for folder in folders:
        _probe_folder(os.path.join(folder, ""))


@functools.cache
def _probe_folder(prefix: str) -> None:
    _set_path_option(prefix, "TRUE")


BLOCK_CACHE_MB = 512
"""GDAL block cache of a stacrrn process unless ``GDAL_CACHEMAX`` is set (GDAL's default is 5 %
of RAM). A COG is written through a staging file whose dirty blocks fill the cache: the
15154² mosaic of the 16-scene benchmark peaked at 2068 MB with GDAL's 1.2 GB and at 1219 MB
with 512 MB, and took 55 s instead of 61 s."""


def limit_block_cache(megabytes: int = BLOCK_CACHE_MB) -> None:
    """Lower GDAL's block cache to ``megabytes`` unless ``GDAL_CACHEMAX`` is set or it is smaller already."""
    lib = _gdal()
    if "GDAL_CACHEMAX" in os.environ or lib is None or not hasattr(lib, "GDALSetCacheMax64"):
        return
    lib.GDALGetCacheMax64.restype = ctypes.c_int64
    lib.GDALSetCacheMax64.argtypes = [ctypes.c_int64]
    if lib.GDALGetCacheMax64() > megabytes << 20:
        lib.GDALSetCacheMax64(megabytes << 20)


def _check_lonlat(crs: rasterio.crs.CRS | str, x: float, y: float, shown: str) -> None:
    """Raise if PROJ cannot take the point ``(x, y)`` of ``crs`` to longitude/latitude.

    Raises
    ------
    MissingCRSError
        If the transform fails: a made-up projection (an unknown ``PROJECTION[...]`` in the WKT),
        an engineering CRS (a GeoTIFF's unknown EPSG code becomes one).
    """
    try:
        warp_transform(crs, "EPSG:4326", [x], [y])
    except Exception:  # rasterio raises CRSError or a private CPLE class: any failure means "no way there"
        wkt = crs if isinstance(crs, str) else crs.to_wkt()
        name = wkt.split('"')[1] if wkt.count('"') >= 2 else "unnamed"
        raise MissingCRSError(  # not PROJ's reason: it can quote a whole PROJJSON document
            f"{shown}: its CRS ({name}) cannot be transformed to longitude/latitude by PROJ; assign a "
            f"georeferenced CRS, e.g. `rio edit-info --crs EPSG:32633 {shown}`"
        ) from None


def require_lonlat(info: RasterInfo) -> None:
    """Check that the raster's CRS can be transformed to longitude/latitude (STAC footprints need it).

    :func:`open_raster` checks this for projected CRSs only: rasters in one engineering CRS
    can still be matched with each other.

    Raises
    ------
    MissingCRSError
        If PROJ cannot transform the raster's centre to longitude/latitude.
    """
    x, y = Affine(*info.transform) @ (info.width / 2, info.height / 2)
    _check_lonlat(info.crs, x, y, redact_href(info.path))


def _open_info(p: str) -> RasterInfo:
    shown = redact_href(p)
    with rasterio.open(p) as src:
        if src.crs is None:
            raise MissingCRSError(
                f"{shown} has no CRS: assign one first, e.g. `rio edit-info --crs EPSG:32618 {shown}`"
            )
        t = src.transform
        if not (all(math.isfinite(v) for v in t[:6]) and t.a != 0 and t.e != 0):
            raise UnreadableRasterError(
                f"{shown} has a degenerate geotransform (pixel size {t.a} x {t.e}); "
                f"set its bounds first, e.g. `gdal_edit.py -a_ullr ULX ULY LRX LRY {shown}`"
            )
        if t.b != 0 or t.d != 0:
            raise UnreadableRasterError(f"{shown} is rotated; warp it north-up first (gdalwarp)")
        if src.crs.is_projected:  # a made-up projection opens fine and fails only when the grid is laid out
            x, y = t @ (src.width / 2, src.height / 2)
            _check_lonlat(src.crs, x, y, shown)
        return RasterInfo(
            p,
            _raster_name(p),
            src.count,
            src.dtypes[0],
            None if src.nodata is None else float(src.nodata),
            src.crs.to_wkt(),
            (t.a, t.b, t.c, t.d, t.e, t.f),
            src.width,
            src.height,
            src.colorinterp.index(ColorInterp.alpha) + 1 if ColorInterp.alpha in src.colorinterp else None,
            any(MaskFlags.per_dataset in flags for flags in src.mask_flag_enums),
        )


def check_bands(infos: Sequence[RasterInfo], bands: Sequence[int] | None) -> list[int]:
    """Return the 1-based band indexes to use, checking every input has them.

    Raises
    ------
    BandMismatchError
        If band counts differ (without a selection) or a selected band is missing.
    """
    if bands is None:
        selections = {tuple(info.data_bands) for info in infos}
        if len(selections) > 1:
            detail = ", ".join(f"{info.name}={len(info.data_bands)}" for info in infos)
            raise BandMismatchError(
                f"inputs have different band counts ({detail}); select common bands with --bands, e.g. --bands 1,2,3"
            )
        return infos[0].data_bands
    for info in infos:
        missing = [b for b in bands if b < 1 or b > info.count]
        if missing:
            raise BandMismatchError(f"{info.name} has {info.count} bands, so band(s) {missing} cannot be selected")
    return list(bands)


def _band_masks(
    src: rasterio.io.DatasetReaderBase, data: NDArray[np.generic], bands: Sequence[int], window: Window | None
) -> Mask:
    """Per-band validity ``(bands, rows, cols)``: not nodata, not masked, finite (``window=None``: decimated)."""
    flags = [src.mask_flag_enums[b - 1] for b in bands]
    valid = _values_valid(data, src.nodata)
    if not all(f in ([MaskFlags.all_valid], [MaskFlags.nodata]) for f in flags):
        shape = None if window is not None else data.shape
        valid &= src.read_masks(list(bands), window=window, out_shape=shape) > 0
    return valid


def _values_valid(data: NDArray[np.generic], nodata: float | None) -> Mask:
    """Per-value validity from the values alone: not the nodata value, finite."""
    valid = np.ones(data.shape, dtype=bool) if nodata is None else data != nodata
    if np.issubdtype(data.dtype, np.floating):
        valid &= np.isfinite(data)
    return valid


def _read_error(info: RasterInfo, exc: Exception) -> UnreadableRasterError:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return UnreadableRasterError(
        f"cannot read pixels of {redact_href(info.path)} (corrupt or truncated?): {redact_text(first)}"
    )


_held = threading.local()

HELD_DATASETS = 4
"""Datasets a thread holds open at most (the least recently read is closed): the scenes a
mosaic chunk meets at a corner. Each held dataset keeps memory (holding a time-series
chunk's 50 dates took that benchmark's peak RSS from 0.9 to 2.8 GB; 4 per thread, to 1.3 GB)."""


@contextmanager
def datasets_held() -> Iterator[None]:
    """Keep the rasters this thread reads with :func:`read_window` open until the block ends.

    Neighbouring windows then share GDAL's cache of the raster's decoded blocks: a window
    that is not aligned with the raster's tiles decodes the tiles it shares with the
    previous window once (a 1024² window 100 pixels off 512-pixel tiles decodes 9 tiles,
    2.2x the pixels, on its own). At most :data:`HELD_DATASETS` are held, and the block
    cache is capped (:func:`limit_block_cache`). Blocks nest; each thread holds its own
    datasets (GDAL datasets are not thread safe).
    """
    outer = getattr(_held, "datasets", None)
    if outer is None:
        limit_block_cache()
        _held.datasets = OrderedDict()
    try:
        yield
    finally:
        if outer is None:
            for src in _held.datasets.values():
                src.close()
            _held.datasets = None


@contextmanager
def _opened(path: str) -> Iterator[Any]:
    """``path`` open for reading: the thread's held dataset inside :func:`datasets_held`, else a new one."""
    held: OrderedDict[str, Any] | None = getattr(_held, "datasets", None)
    if held is None:
        with rasterio.open(path) as src:
            yield src
        return
    src = held.get(path)
    if src is None:
        src = held[path] = rasterio.open(path)
        if len(held) > HELD_DATASETS:
            held.popitem(last=False)[1].close()
    held.move_to_end(path)
    try:
        yield src
    except BaseException:
        held.pop(path, None)  # a failed read starts again on a new dataset
        src.close()
        raise


def read_window(info: RasterInfo, window: Box, bands: Sequence[int]) -> tuple[NDArray[np.generic], Mask]:
    """Read a window of the raster's own grid in its native data type, with per-band validity.

    Raises
    ------
    UnreadableRasterError
        If GDAL fails to decode the window.
    """
    win = Window(window.col0, window.row0, window.width, window.height)

    def read() -> tuple[NDArray[np.generic], Mask]:
        with _opened(info.path) as src:
            data = src.read(list(bands), window=win)
            return data, _band_masks(src, data, bands, win)

    try:
        return _remote(info.path, "read", read)
    except RasterioError as exc:
        raise _read_error(info, exc) from None


def valid_shares(info: RasterInfo, bands: Sequence[int], size: int = 64) -> list[float]:
    """Share of valid pixels of each band, judged on a ``size``-pixel-wide decimated read (an overview of a COG).

    Raises
    ------
    UnreadableRasterError
        If GDAL fails to decode the raster.
    """
    scale = max(info.width, info.height) / size
    shape = (len(bands), max(1, round(info.height / scale)), max(1, round(info.width / scale)))

    def read() -> list[float]:
        with _opened(info.path) as src:
            data = src.read(list(bands), out_shape=shape)
            return [float(v) for v in _band_masks(src, data, bands, None).mean(axis=(1, 2))]

    try:
        return _remote(info.path, "read", read)
    except RasterioError as exc:
        raise _read_error(info, exc) from None


def same_crs(a: str, b: str) -> bool:
    """True if two CRS definitions (WKT, ``EPSG:n``, ...) describe the same CRS."""
    return a == b or rasterio.crs.CRS.from_user_input(a) == rasterio.crs.CRS.from_user_input(b)


def grid_offset(info: RasterInfo, grid: Grid) -> tuple[int, int] | None:
    """Integer ``(row, col)`` offset of the raster on ``grid`` if it is aligned with it, else None."""
    if not same_crs(info.crs, grid.crs):
        return None
    a, _, c, _, e, f = info.transform
    ga, _, gc, _, ge, gf = grid.transform
    if not (np.isclose(a, ga, rtol=1e-9) and np.isclose(e, ge, rtol=1e-9)):
        return None
    col = (c - gc) / ga
    row = (f - gf) / ge
    if not (math.isfinite(col) and math.isfinite(row)):  # pixels too small for the distance: not aligned
        return None
    if abs(col - round(col)) > 1e-3 or abs(row - round(row)) > 1e-3:
        return None
    return round(row), round(col)


def read_on_grid(
    info: RasterInfo,
    grid: Grid,
    box: Box,
    bands: Sequence[int],
    resampling: Resampling = Resampling.nearest,
) -> tuple[F64, Mask]:
    """Read the raster resampled to ``box`` of the common ``grid``.

    Parameters
    ----------
    info
        The raster.
    grid
        The common grid.
    box
        Pixel box of ``grid`` to fill.
    bands
        1-based band indexes.
    resampling
        Resampling used when the raster is not aligned with ``grid``.

    Returns
    -------
    values, valid
        Float64 values ``(bands, box.height, box.width)`` and the validity mask; pixels
        outside the raster are invalid.
    """
    offset = grid_offset(info, grid)
    if offset is not None:
        native = box.shift(-offset[0], -offset[1]).intersect(Box(0, 0, info.height, info.width))
        if native.empty:
            return np.zeros((len(bands), box.height, box.width)), np.zeros((box.height, box.width), dtype=bool)
        data, ok = read_window(info, native, bands)
        if native.height == box.height and native.width == box.width:  # wholly inside: one conversion, no fill
            return data.astype(np.float64), np.all(ok, axis=0)
        values = np.zeros((len(bands), box.height, box.width))
        valid = np.zeros((box.height, box.width), dtype=bool)
        dst = native.shift(offset[0] - box.row0, offset[1] - box.col0)
        values[:, dst.row0 : dst.row1, dst.col0 : dst.col1] = data
        valid[dst.row0 : dst.row1, dst.col0 : dst.col1] = ok.all(axis=0)
        return values, valid
    win = Window(box.col0, box.row0, box.width, box.height)
    try:
        data = _remote(info.path, "read", lambda: _read_warped(info, grid, win, bands, resampling))
    except RasterioError as exc:
        raise _read_error(info, exc) from None
    valid = (data[-1] > 0) & np.all(_values_valid(data[:-1], info.nodata), axis=0)
    return data[:-1].astype(np.float64), valid


def _read_warped(
    info: RasterInfo, grid: Grid, win: Window, bands: Sequence[int], resampling: Resampling
) -> NDArray[np.generic]:
    """Bands plus an alpha band (last) of a window of the common grid, through a warped VRT."""
    with ExitStack() as stack:
        src = stack.enter_context(rasterio.open(info.path))
        vrt = stack.enter_context(
            WarpedVRT(
                src,
                crs=grid.crs,
                transform=Affine(*grid.transform),
                width=grid.width,
                height=grid.height,
                resampling=resampling,
                **({"src_alpha": info.alpha} if info.alpha else {"add_alpha": True}),
            )
        )
        alpha = vrt.colorinterp.index(ColorInterp.alpha) + 1
        return np.asarray(vrt.read([*list(bands), alpha], window=win))
