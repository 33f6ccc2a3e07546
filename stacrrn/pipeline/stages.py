"""A run as separate map-reduce-map stages that share nothing but the output storage.

The serverless handlers (and any batch system) run a STAC job in four steps, each in its
own process, each rebuilding the same :class:`~stacrrn.pipeline.run_setup.RunSetup` from
the same items and options:

1. :func:`save_tile_statistics`, once per tile (map): pass-1 moments of a contiguous run of
   the plan's chunks, stored per chunk in one ``.npz`` archive per tile under
   ``stacrrn-statistics/<fingerprint>/`` (:mod:`stacrrn.io.statistics_file`);
2. :func:`solve_from_tiles` (reduce): all tiles' chunk moments summed in chunk order, which
   gives the very statistics (bit for bit) of a single-process run, then the model JSON and
   the reference block map;
3. :func:`apply_item`, once per item (map): the item's corrected COGs, block map and item JSON;
4. :func:`write_run_collection`: the collection, after checking that every item was
   published with this model.
"""

from __future__ import annotations

from collections.abc import Sequence

import pystac

from stacrrn.core.model import RRNModel
from stacrrn.core.statistics import ChunkStatistics, Statistics
from stacrrn.errors import InputError, ParameterError
from stacrrn.io.statistics_file import chunks_from_bytes, chunks_to_bytes
from stacrrn.io.storage import Storage
from stacrrn.pipeline.item_outputs import (
    ItemJob,
    correct_item,
    current_item,
    item_key,
    record_item_quality,
    write_collection,
)
from stacrrn.pipeline.passes.statistics import chunk_statistics_of, merge_chunks, tile_chunks
from stacrrn.pipeline.run import solve, usable_statistics
from stacrrn.pipeline.run_setup import RunSetup

TILES_PREFIX = "stacrrn-statistics"


def tile_key(fingerprint: str, tile: int, tiles: int) -> str:
    """Storage key of one tile's chunk moments."""
    return f"{TILES_PREFIX}/{fingerprint}/tile-{tile:05d}-of-{tiles:05d}.npz"


def save_tile_statistics(setup: RunSetup, storage: Storage, tile: int, tiles: int) -> str:
    """Compute the moments of tile ``tile`` of ``tiles`` (pass 1 over its chunks) and store them.

    Returns
    -------
    str
        The href of the stored moments.
    """
    plan = setup.plan
    indices = tile_chunks(len(plan.chunks), tile, tiles)
    moments = list(chunk_statistics_of(plan, indices))
    key = tile_key(plan.fingerprint(), tile, tiles)
    return storage.put_bytes(chunks_to_bytes(indices, moments, plan.fingerprint()), key)


def load_tile_statistics(setup: RunSetup, storage: Storage, tiles: int) -> Statistics:
    """Sum the stored moments of all ``tiles`` tiles in chunk order.

    Raises
    ------
    InputError
        If a tile's moments are missing (its statistics stage has not run or failed), damaged,
        of another format version, or of other chunks than the plan's.
    """
    chunks = (c for tile in range(tiles) for c in _tile_chunks(setup, storage, tile, tiles))
    return merge_chunks(setup.plan, chunks)  # one tile's chunk moments in memory at a time


def _tile_chunks(setup: RunSetup, storage: Storage, tile: int, tiles: int) -> list[ChunkStatistics]:
    """The stored chunk moments of one tile, checked against the plan's chunks."""
    plan = setup.plan
    key = tile_key(plan.fingerprint(), tile, tiles)
    data = storage.read_bytes(key)
    if data is None:
        raise InputError(
            f"no statistics for tile {tile} of {tiles} under {storage.url}; run the statistics stage "
            "for every tile (same items and parameters) before the solve"
        )
    stored = chunks_from_bytes(data, plan.fingerprint())
    if stored is None:
        raise InputError(
            f"the statistics of tile {tile} of {tiles} at {storage.href(key)} are damaged or of another "
            "stacrrn version; rerun its statistics stage"
        )
    indices, chunks = stored
    if indices != list(tile_chunks(len(plan.chunks), tile, tiles)):
        raise InputError(f"tile {tile} of {tiles} holds other chunks than the plan's; rerun its statistics stage")
    return chunks


def solve_from_tiles(setup: RunSetup, storage: Storage, tiles: int) -> tuple[RRNModel, str, str | None, list[str]]:
    """Merge the tiles' moments, fit the model and publish it with the reference block map.

    Returns
    -------
    tuple
        The model, its href, the reference block map's href (or ``None``) and warnings.
    """
    stats = load_tile_statistics(setup, storage, tiles)
    warnings = usable_statistics(setup, stats)
    model, model_href, reference_href = solve(setup, stats, storage, warnings)
    return model, model_href, reference_href, warnings


def load_model(storage: Storage, href: str) -> RRNModel:
    """Read a model JSON published under ``storage``.

    Raises
    ------
    InputError
        If it does not exist there.
    """
    prefix = storage.href("")
    text = storage.read_text(href[len(prefix) :]) if href.startswith(prefix) else None
    if text is None:
        raise InputError(f"no model at {href}; run the solve stage first (its output names the model)")
    return RRNModel.from_json(text)


def apply_item(setup: RunSetup, storage: Storage, model_href: str, item_id: str) -> dict[str, object]:
    """Publish the corrected COGs, block map and item JSON of one item (kept if already current).

    Raises
    ------
    ParameterError
        If ``item_id`` is not one of the run's items.
    """
    model = load_model(storage, model_href)
    ids = [it.id for it in setup.items]
    if item_id not in ids:
        raise ParameterError(f"item {item_id!r} is not one of the run's {len(ids)} items")
    existing = current_item(storage, item_id, model.digest())
    return existing or correct_item(ItemJob(setup, model, storage, model_href), ids.index(item_id))


def write_run_collection(
    items: Sequence[pystac.Item], storage: Storage, model_href: str, collection_id: str, reference_href: str | None
) -> tuple[str, dict[str, object]]:
    """Write the collection of a run whose items have all been published with the model.

    Raises
    ------
    InputError
        If an item is missing or was made with another model.
    """
    digest = load_model(storage, model_href).digest()
    dicts = []
    for it in items:
        d = current_item(storage, it.id, digest)
        if d is None:
            raise InputError(f"item {it.id} is not published with model {digest} at {storage.href(item_key(it.id))}")
        dicts.append(d)
    record_item_quality(storage, load_model(storage, model_href), dicts)
    href, coll = write_collection(storage, collection_id, dicts, reference_href)
    return href, coll
