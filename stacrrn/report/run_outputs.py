"""Find and load what a run holds: its model, the before/after rasters of every image, block maps.

A run is the output folder of ``stacrrn match`` (``stacrrn-model.json``, ``<name>.tif``,
``blockmaps/``) or the output of ``stacrrn run`` (``collection.json``, one item per input
with corrected COG assets, a ``blockmap`` asset and a ``model`` asset). Either may be given
as its folder or prefix (local, ``s3://`` or ``http(s)://``), or as the path or URL of its
``collection.json`` or model JSON. Nothing here reads pixels.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pystac

from stacrrn.core.model import RRNModel
from stacrrn.errors import InputError, StacrrnError
from stacrrn.io.stac import asset_href, select_bands
from stacrrn.io.storage import configure_cloud
from stacrrn.pipeline.item_outputs import COLLECTION_KEY
from stacrrn.pipeline.match import MODEL_FILE
from stacrrn.pipeline.passes.apply import read_model

PLACEHOLDER = re.compile(r"band[ _]?\d+", re.IGNORECASE)
"""Descriptions that only number a band (``Band 1``), not name it."""


@dataclass(frozen=True)
class BandSource:
    """One band of one raster: its href (path or URL) and 1-based band index."""

    href: str
    index: int


@dataclass(frozen=True)
class ImageOutputs:
    """Where one image's bands are, before and after the correction (model band order).

    ``before`` or ``after`` is empty when those rasters cannot be found.
    """

    name: str
    before: tuple[BandSource, ...]
    after: tuple[BandSource, ...]
    datetime: str | None = None
    field_map: str | None = None


@dataclass(frozen=True)
class RunOutputs:
    """What a run holds, as loaded by :func:`load_run`.

    Attributes
    ----------
    root
        The run's folder or prefix.
    kind
        ``match`` (local output folder) or ``stac`` (items and a collection).
    model
        The fitted model.
    model_href
        Where the model JSON is.
    images
        One entry per model image, in model order.
    band_labels
        Label of each model band (``rrn:bands`` of STAC runs, band numbers of local runs).
    band_names
        Common name or description of each band when known (``red``, ``nir``...), else ``None``.
    reference_map
        Href of the reference block map, if any.
    notes
        What could not be found (shown in the report).
    """

    root: str
    kind: str
    model: RRNModel
    model_href: str
    images: tuple[ImageOutputs, ...]
    band_labels: tuple[str, ...]
    band_names: tuple[str | None, ...]
    reference_map: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_remote(self) -> bool:
        """True when the run is not on the local file system."""
        return is_url(self.root)


def is_url(href: str) -> bool:
    """True for ``scheme://`` hrefs other than ``file://``."""
    return "://" in href and not href.startswith("file://")


def join(base: str, *parts: str) -> str:
    """``base/part/...`` for paths and URLs alike."""
    return posixpath.join(base.rstrip("/"), *parts) if is_url(base) else os.path.join(base, *parts)


def parent(href: str) -> str:
    """The folder or prefix holding ``href``."""
    return posixpath.dirname(href.rstrip("/")) if is_url(href) else os.path.dirname(os.path.abspath(href))


def resolve(base: str, href: str) -> str:
    """``href`` made absolute against the JSON document at ``base``."""
    href = href.removeprefix("file://")
    if is_url(href) or os.path.isabs(href):
        return href
    if is_url(base):
        scheme, rest = base.split("://", 1)
        return f"{scheme}://{posixpath.normpath(posixpath.join(posixpath.dirname(rest), href))}"
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(base)), href))


def exists(href: str) -> bool:
    """True if a file or object exists at ``href`` (False when the store cannot tell)."""
    try:
        fs, path = fsspec.core.url_to_fs(href)
        return bool(fs.isfile(path))
    except Exception:  # any backend failure (no bucket, denied, unreachable) means "not there"
        return False


def read_json(href: str) -> dict[str, Any]:
    """Parse the JSON object at ``href``.

    Raises
    ------
    InputError
        If it cannot be read or is not a JSON object.
    """
    try:
        with fsspec.open(href, "rt") as f:
            d = json.load(f)
    except (OSError, ValueError, ImportError) as exc:  # ImportError: no driver for the URL scheme
        raise InputError(f"cannot read {href}: {exc}") from None
    if not isinstance(d, dict):
        raise InputError(f"{href} is not a JSON object")
    return d


def load_run(run: str | os.PathLike[str]) -> RunOutputs:
    """Load what a run holds.

    Parameters
    ----------
    run
        Output folder or prefix of ``stacrrn match`` or ``stacrrn run``, or the path or URL of
        its ``collection.json`` or model JSON.

    Returns
    -------
    RunOutputs
        The model and where every image's rasters and block maps are.

    Raises
    ------
    InputError
        If no model is found or it cannot be read.
    """
    href = os.fspath(run).removeprefix("file://")
    if is_url(href):
        configure_cloud()
    elif not os.path.exists(href):
        raise InputError(f"{href} does not exist; pass the output folder of `stacrrn match` or `stacrrn run`")
    if href.endswith(".json"):
        return _from_json(href)
    if exists(join(href, MODEL_FILE)):
        return _match_run(href.rstrip("/"), join(href, MODEL_FILE))
    if exists(join(href, COLLECTION_KEY)):
        collection = join(href, COLLECTION_KEY)
        return _stac_run(href.rstrip("/"), collection, read_json(collection))
    raise InputError(
        f"{href} holds neither {MODEL_FILE} nor {COLLECTION_KEY}: pass the output folder of "
        "`stacrrn match` or `stacrrn run`, or its collection.json or model JSON"
    )


def _from_json(href: str) -> RunOutputs:
    d = read_json(href)
    root = parent(href)
    if d.get("type") == "Collection":
        return _stac_run(root, href, d)
    if "global" in d and "images" in d:
        collection = join(root, COLLECTION_KEY)
        if exists(collection):
            return _stac_run(root, collection, read_json(collection), href)
        return _match_run(root, href)
    raise InputError(f"{href} is neither a stacrrn model nor a run's collection.json")


def _match_run(root: str, model_href: str) -> RunOutputs:
    """A ``stacrrn match`` output folder: ``<name>.tif``, ``blockmaps/``, inputs from the model."""
    model = read_model(model_href)
    notes: list[str] = []
    images = []
    for im in model.images:
        after_href = join(root, f"{im.name}.tif")
        after = tuple(BandSource(after_href, k + 1) for k in range(len(model.bands))) if exists(after_href) else ()
        before = tuple(BandSource(im.path, b) for b in model.bands) if exists(im.path) else ()
        if not after:
            notes.append(f"{im.name}: corrected raster {after_href} not found")
        if not before:
            notes.append(f"{im.name}: input raster {im.path} not found")
        field_map = join(root, "blockmaps", f"{im.name}_field.tif")
        images.append(ImageOutputs(im.name, before, after, None, field_map if exists(field_map) else None))
    reference = join(root, "blockmaps", "reference.tif")
    names = _descriptions(next((i.before for i in images if i.before), ()))
    if not any(names):  # no input to read, or it names nothing: the outputs may
        names = _descriptions(next((i.after for i in images if i.after), ())) or names
    return RunOutputs(
        root,
        "match",
        model,
        model_href,
        tuple(images),
        tuple(str(b) for b in model.bands),
        names,
        reference if exists(reference) else None,
        tuple(notes),
    )


def _descriptions(sources: tuple[BandSource, ...]) -> tuple[str | None, ...]:
    """Band names of a local raster: its descriptions (``blue``, ``nir``...), else its colour interpretation.

    GDAL's placeholder descriptions (``Band 1``...) count as none; a band without a description
    is named by its colour interpretation when that is ``red``, ``green`` or ``blue`` (an RGB
    GeoTIFF). ``None`` where neither says anything.
    """
    if not sources:
        return ()
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(sources[0].href) as src:
            described, colours = src.descriptions, src.colorinterp
    except RasterioError:
        return tuple(None for _ in sources)
    out: list[str | None] = []
    for s in sources:
        k = s.index - 1
        text = described[k] if k < len(described) else None
        colour = colours[k].name if k < len(colours) else ""
        if text and not PLACEHOLDER.fullmatch(text):
            out.append(text)
        else:
            out.append(colour if colour in ("red", "green", "blue") else None)
    return tuple(out)


def _stac_run(root: str, collection_href: str, collection: dict[str, Any], model_href: str | None = None) -> RunOutputs:
    """A ``stacrrn run`` output: the collection's items, their assets and the model they link."""
    hrefs = [resolve(collection_href, ln["href"]) for ln in collection.get("links", []) if ln.get("rel") == "item"]
    items = {}
    for href in hrefs:
        d = read_json(href)
        items[str(d.get("id"))] = (href, d)
    if model_href is None:
        model_href = next(
            (resolve(h, d["assets"]["model"]["href"]) for h, d in items.values() if "model" in d.get("assets", {})),
            None,
        )
    if model_href is None:
        raise InputError(f"{collection_href}: no item links a model JSON; is it the output of `stacrrn run`?")
    model = read_model(model_href)
    first = next(iter(items.values()), ("", {}))[1]
    labels = list(first.get("properties", {}).get("rrn:bands") or [str(b) for b in model.bands])
    notes: list[str] = []
    images = []
    names: list[str | None] = [None] * len(labels)
    for im in model.images:
        if im.name not in items:
            notes.append(f"{im.name}: no output item in {collection_href}")
            images.append(ImageOutputs(im.name, (), ()))
            continue
        image, found = _item_image(im.name, *items[im.name], labels, notes)
        images.append(image)
        names = [n or f for n, f in zip(names, found, strict=True)]
    ref = collection.get("assets", {}).get("reference-blockmap")
    reference = resolve(collection_href, ref["href"]) if ref else None
    return RunOutputs(
        root, "stac", model, model_href, tuple(images), tuple(labels), tuple(names), reference, tuple(notes)
    )


def data_assets(item: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The corrected data assets of an output item of ``stacrrn run``, as ``(key, asset)``.

    Those ``rrn:assets`` names (the item also carries its input's other assets, uncorrected);
    items without it (older outputs) hold only corrected data assets besides metadata.
    """
    assets = item.get("assets", {})
    normalized = item.get("properties", {}).get("rrn:assets")
    if isinstance(normalized, list):
        return [(k, assets[k]) for k in normalized if k in assets]
    return [(k, a) for k, a in assets.items() if "data" in (a.get("roles") or [])]


def _item_image(
    name: str, href: str, item: dict[str, Any], labels: list[str], notes: list[str]
) -> tuple[ImageOutputs, list[str | None]]:
    """One output item's after (its data assets) and before (its source item's assets) bands."""
    n = len(labels)
    after: list[BandSource | None] = [None] * n
    before: list[BandSource | None] = [None] * n
    names: list[str | None] = [None] * n
    source = _source_item(href, item, notes)
    if source is not None:
        try:
            selection = select_bands([source], labels)
        except StacrrnError as exc:
            notes.append(f"{name}: the source item's bands do not resolve ({exc})")
            selection = None
        if selection is not None:
            assets = dict(data_assets(item))
            for key, positions in selection.assets.items():
                for j, p in enumerate(positions):
                    before[p] = BandSource(asset_href(source, key), selection.bands[p].index)
                    if key in assets:
                        after[p] = BandSource(resolve(href, assets[key]["href"]), j + 1)
                        names[p] = _common_name(assets[key], j)
    if not any(after):  # no source item: the data assets' bands, in order, are the model's bands
        flat = [
            (resolve(href, a["href"]), j + 1, _common_name(a, j))
            for _, a in data_assets(item)
            for j in range(len(a.get("eo:bands") or a.get("raster:bands") or [{}]))
        ]
        if len(flat) == n:
            after = [BandSource(h, j) for h, j, _ in flat]
            names = [c for _, _, c in flat]
    if not all(after):
        notes.append(f"{name}: corrected assets of {href} not found")
    when = item.get("properties", {}).get("datetime")
    blockmap = item.get("assets", {}).get("blockmap")
    image = ImageOutputs(
        name,
        tuple(b for b in before if b is not None) if all(before) else (),
        tuple(a for a in after if a is not None) if all(after) else (),
        when,
        resolve(href, blockmap["href"]) if blockmap else None,
    )
    return image, names


def _common_name(asset: dict[str, Any], j: int) -> str | None:
    bands = asset.get("eo:bands") or asset.get("bands") or []
    band = bands[j] if j < len(bands) and isinstance(bands[j], dict) else {}
    value = band.get("common_name") or band.get("eo:common_name") or band.get("name")
    return str(value) if value else None


def _source_item(href: str, item: dict[str, Any], notes: list[str]) -> pystac.Item | None:
    """The input item an output item was derived from, if it can be read."""
    links = [ln["href"] for ln in item.get("links", []) if ln.get("rel") == "derived_from"]
    if not links:
        notes.append(f"{item.get('id')}: no derived_from link, input rasters unknown")
        return None
    source = resolve(href, links[0])
    try:
        return pystac.Item.from_dict(read_json(source), href=source)
    except (InputError, pystac.STACError, KeyError, TypeError, ValueError) as exc:
        notes.append(f"{item.get('id')}: input item {source} unreadable ({type(exc).__name__})")
        return None


def datetimes(outputs: RunOutputs) -> list[str | None]:
    """ISO date-time of every image: from the model's quality table, else the run's items."""
    table = {r.get("name"): r.get("datetime") for r in outputs.model.quality.get("images", []) if isinstance(r, dict)}
    return [table.get(im.name) or im.datetime for im in outputs.images]
