"""Zarr stores of images on a common grid: laid out first, filled chunk by chunk, published last.

A store is written in three steps, so that a reader never takes a half store for a whole one:

1. :func:`lay_out` writes the skeleton (Zarr format 2): every variable's metadata, the
   coordinates (``time``, ``y``, ``x``, the CF grid mapping ``spatial_ref``) and the small
   variables, but no chunk of the large ones and no consolidated metadata;
2. tasks write whole chunks of the large variables (:func:`open_for_writing`), each chunk by
   one task only, from any thread or process;
3. :func:`publish` writes the consolidated metadata (``.zmetadata``), the key that
   ``xarray.open_zarr`` reads first: a store without it is not finished (:func:`is_complete`).

Stores live in a local folder or under ``s3://`` (through fsspec, e.g. moto's server on
loopback in the tests, with ``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

from typing import Any, Literal

import xarray as xr
import zarr
from zarr.abc.store import Store

ZARR_FORMAT: Literal[2] = 2
"""Zarr format of the stores: 2, which every Zarr reader of the field opens, with consolidated metadata."""


def zarr_store(href: str, read_only: bool = False) -> Store:
    """The Zarr store at ``href``: a local folder or ``s3://bucket/key``."""
    if href.startswith("s3://"):
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(href, read_only=read_only)
    from zarr.storage import LocalStore

    return LocalStore(href.removeprefix("file://"), read_only=read_only)


def lay_out(href: str, skeleton: xr.Dataset, encoding: dict[str, dict[str, Any]]) -> None:
    """Write the store's skeleton (step 1): metadata, coordinates and NumPy-backed variables.

    Dask-backed variables of ``skeleton`` are only declared (their chunks are written by the
    tasks of step 2). An earlier store at ``href`` (an interrupted run's) is replaced.
    """
    skeleton.to_zarr(
        zarr_store(href),
        mode="w",
        compute=False,
        consolidated=False,
        zarr_format=ZARR_FORMAT,
        encoding=encoding,
    )


def open_for_writing(href: str, names: list[str]) -> list[zarr.Array[Any]]:
    """Variables ``names`` of the laid-out store, to write chunks of them (step 2)."""
    group = zarr.open_group(zarr_store(href), mode="r+", zarr_format=ZARR_FORMAT, use_consolidated=False)
    arrays = [group[name] for name in names]
    return [a for a in arrays if isinstance(a, zarr.Array)]


def publish(href: str) -> None:
    """Write the consolidated metadata (step 3): from now on the store is complete."""
    zarr.consolidate_metadata(zarr_store(href), zarr_format=ZARR_FORMAT)


def is_complete(href: str) -> bool:
    """True if the store at ``href`` has its consolidated metadata (:func:`publish` ran)."""
    try:
        group = zarr.open_group(zarr_store(href, read_only=True), mode="r", use_consolidated=True)
    except (FileNotFoundError, ValueError, KeyError, zarr.errors.GroupNotFoundError):
        return False
    return group.metadata.consolidated_metadata is not None
