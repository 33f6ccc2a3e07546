"""Pass 2 of a STAC run as one Zarr datacube (``--format zarr``) and the item describing it.

Every image is corrected on the run's common grid, as the stack that ``odc.stac.load`` gives
(images along ``time``, one variable per band), and written into ``cube-<digest>.zarr``
under the output location: chunks of one image by ``chunk_size`` pixels, each written by
one task (threads or a Dask cluster), each task holding one image's chunk at a time. Pixels
are read without masks (masks restrict the statistics only) and corrected as pass 2
corrects files (:class:`~stacrrn.pipeline.passes.correction.Correction`): an item on the
common grid gets the very pixels of its corrected COG.

The store is complete once its consolidated metadata is written
(:func:`~stacrrn.io.zarr_store.publish`); its item is written after that, and the store of
another model that the item pointed at before is deleted only then. Each variable keeps the
source data type, with the band's nodata as ``_FillValue``; when a band has no nodata value,
every variable is float32 with NaN outside the images.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import pystac
import xarray as xr
from affine import Affine
from numcodecs import Blosc
from numpy.typing import NDArray

from stacrrn._version import __version__
from stacrrn.errors import InputError
from stacrrn.io.grid import chunks
from stacrrn.io.output_keys import check_item_id
from stacrrn.io.zarr_store import is_complete, lay_out, open_for_writing, publish
from stacrrn.pipeline.execution.parallel import Workers, imap_bounded
from stacrrn.pipeline.execution.progress import Progress, no_progress
from stacrrn.pipeline.inputs.plan import Plan
from stacrrn.pipeline.item_outputs import COLLECTION_KEY, ItemJob, item_key, published_item, versioned
from stacrrn.pipeline.outputs.cube_item import CubeLayout, cube_item
from stacrrn.pipeline.outputs.manifest import RunManifest
from stacrrn.pipeline.outputs.stac_output import item_json
from stacrrn.pipeline.passes.apply import ApplyResult, record_outputs
from stacrrn.pipeline.passes.correction import METHOD_ATTR, MODEL_ATTR, Correction, OutputType
from stacrrn.pipeline.run_setup import RunSetup, unmasked_plan
from stacrrn.types import Box

log = logging.getLogger(__name__)


COMPRESSOR = Blosc(cname="zstd", clevel=3, shuffle=Blosc.SHUFFLE)
"""Compression of the image chunks: Zstandard after byte shuffling, as the COGs use ZSTD (the
tests' Sentinel-2 dates: 739 kB of chunks, against 1085 kB with Blosc's default LZ4 and 2341 kB raw)."""


def cube_id(collection_id: str) -> str:
    """Id of the datacube item of a run whose collection is ``collection_id``."""
    item_id = f"{collection_id}-cube"
    check_item_id(item_id)
    return item_id


def _date(item: pystac.Item) -> dt.datetime:
    """The item's date in UTC: its ``datetime``, else its ``start_datetime``.

    Raises
    ------
    InputError
        If the item has neither.
    """
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise InputError(f"item {item.id} has no datetime nor start_datetime: a datacube needs a date per image")
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def cube_layout(setup: RunSetup) -> CubeLayout:
    """The datacube of a run: its grid, images, bands, data types and fill values (see the module docstring)."""
    inputs = setup.inputs
    first = inputs.assets[0]
    headers = [first[b.asset] for b in inputs.selection.bands]
    nodata = [h.nodata for h in headers]
    keep = all(v is not None for v in nodata)
    times = [_date(it) for it in inputs.items]
    return CubeLayout(
        setup.plan.grid,
        list(inputs.items),
        times,
        inputs.selection,
        [h.dtype if keep else "float32" for h in headers],
        nodata if keep else [None] * len(nodata),
        setup.options.execution.chunk_size,
    )


def _skeleton(layout: CubeLayout, job: ItemJob) -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
    """The store's variables (band data declared lazily), coordinates, attributes and encoding."""
    from odc.geo.geobox import GeoBox
    from odc.geo.xr import xr_coords

    grid, n, c = layout.grid, len(layout.items), layout.chunk
    geobox = GeoBox((grid.height, grid.width), Affine(*grid.transform), grid.crs)
    coords: dict[Any, Any] = dict(xr_coords(geobox, crs_coord_name="spatial_ref"))
    coords |= {
        "time": ("time", np.array([t.replace(tzinfo=None) for t in layout.times], dtype="datetime64[ns]")),
        "id": ("time", np.array([it.id for it in layout.items], dtype=object)),
        "band": ("band", np.array(layout.variables, dtype=object)),
    }
    g = job.model.global_fit
    data: dict[str, Any] = {
        f"rrn_{name}": (("time", "band"), values, {"description": f"global {name} of each image and band"})
        for name, values in (("gain", g.gains), ("offset", g.offsets))
    }
    encoding: dict[str, dict[str, Any]] = {}
    for name, dtype, fill in zip(layout.variables, layout.dtypes, layout.nodata, strict=True):
        lazy = da.zeros((n, grid.height, grid.width), dtype=dtype, chunks=(1, c, c))
        data[name] = (("time", "y", "x"), lazy, {"grid_mapping": "spatial_ref"})
        encoding[name] = {
            "chunks": (1, c, c),
            "_FillValue": np.nan if fill is None else fill,
            "compressors": (COMPRESSOR,),
        }
    attrs = {
        MODEL_ATTR: job.model.digest(),
        METHOD_ATTR: job.model.method,
        "rrn:model_href": job.model_href,
        "processing:software": f"stacrrn {__version__}",
        "Conventions": "CF-1.8",
    }
    return xr.Dataset(data, coords=coords, attrs=attrs), encoding


@dataclass(frozen=True)
class ChunkTask:
    """Corrects every image meeting one chunk of the grid and writes its chunks of the store."""

    plan: Plan
    correction: Correction
    layout: CubeLayout
    href: str

    def __call__(self, box: Box) -> NDArray[np.int64]:
        """Write ``box`` of every image that meets it; return the values clipped, ``(images, bands)``."""
        layout = self.layout
        nb = len(layout.variables)
        clipped = np.zeros((len(layout.items), nb), dtype=np.int64)
        images = self.plan.images_in(box)
        if not images:
            return clipped
        arrays = open_for_writing(self.href, layout.variables)
        window = np.s_[box.row0 : box.row1, box.col0 : box.col1]
        for i in images:
            values, valid = self.plan.read_chunk(box, [i])[i]
            if not valid.any():
                continue
            per_band = np.broadcast_to(valid, values.shape)
            for dtype in sorted(set(layout.dtypes)):
                bands = [b for b in range(nb) if layout.dtypes[b] == dtype]
                counts = np.zeros(len(bands), dtype=np.int64)
                out = self.correction.window(values[bands], per_band[bands], i, bands, box, np.dtype(dtype), counts)
                clipped[i, bands] += counts
                for k, b in enumerate(bands):
                    arrays[b][(i, *window)] = out[k]
        return clipped


def write_store(job: ItemJob, layout: CubeLayout, href: str, workers: Workers, progress: Progress) -> NDArray[np.int64]:
    """Lay out, fill and publish the store at ``href``; return the values clipped per image and band."""
    plan = unmasked_plan(job.setup)
    output: OutputType = "source" if layout.nodata and all(v is not None for v in layout.nodata) else "float32"
    correction = Correction.of(job.model, range(len(layout.items)), plan.grid, list(layout.nodata), output)
    lay_out(href, *_skeleton(layout, job))
    task = ChunkTask(plan, correction, layout, href)
    boxes = chunks(plan.grid, layout.chunk)
    clipped = np.zeros((len(layout.items), len(layout.variables)), dtype=np.int64)
    progress("apply", 0, len(boxes))
    for done, counts in enumerate(imap_bounded(task, boxes, workers), start=1):
        clipped += counts
        progress("apply", done, len(boxes))
    publish(href)
    return clipped


def write_cube(
    job: ItemJob,
    resume: bool = True,
    workers: Workers = 1,
    progress: Progress = no_progress,
    manifest: RunManifest | None = None,
) -> tuple[dict[str, Any], bool]:
    """Write the run's datacube and then its item (see the module docstring).

    Parameters
    ----------
    job
        Setup, model and storage of the run.
    resume
        Keep a complete store of this model and its item from an earlier run.
    workers
        Concurrent chunks (threads or a Dask cluster).
    progress
        Progress callback (``apply``, chunks done, chunks).
    manifest
        Records every input item as done, with the datacube item's href.

    Returns
    -------
    tuple
        The datacube item's JSON, and whether it was kept from an earlier run.
    """
    setup, storage, model = job.setup, job.storage, job.model
    item_id = cube_id(setup.collection_id)
    key = item_key(item_id)
    href = storage.href(versioned("cube", model, ".zarr"))
    previous = published_item(storage, item_id)
    current = previous is not None and previous["properties"].get("rrn:model_digest") == model.digest()
    kept = resume and current and is_complete(href)
    if kept:
        assert previous is not None
        d = previous
    else:
        layout = cube_layout(setup)
        clipped = write_store(job, layout, href, workers, progress)
        results = [ApplyResult(it.id, href, c.tolist(), [], False) for it, c in zip(layout.items, clipped, strict=True)]
        record_outputs(model, results)
        storage.put_text(model.to_json(), versioned("stacrrn-model", model, ".json"))
        item = cube_item(item_id, layout, model, href, setup.collection_id, __version__)
        item.properties["rrn:clipped"] = {
            it.id: dict(zip(layout.variables, c.tolist(), strict=True))
            for it, c in zip(layout.items, clipped, strict=True)
            if c.any()
        }
        d = item_json(item, storage.href(key), job.model_href, storage.href(COLLECTION_KEY))
        storage.put_text(json.dumps(d), key)
        if previous is not None:  # another model's store, unreferenced from now on
            _delete_superseded(job, previous, href)
    if manifest is not None:
        for it in setup.inputs.items:
            manifest.item_done(it.id, storage.href(key), kept=kept)
    log.info("published datacube %s (%s)", href, "kept" if kept else "written", extra={"fields": {"event": "cube"}})
    return d, kept


def _delete_superseded(job: ItemJob, previous: dict[str, Any], current: str) -> None:
    """Delete the store an earlier item of the run pointed at, if it is another one."""
    old = previous.get("assets", {}).get("zarr", {}).get("href")
    if isinstance(old, str) and old != current:
        job.storage.delete_tree(old)
