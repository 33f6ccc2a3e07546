"""Fuzzing the raster and STAC item readers: malformed input ends in the error tree, never in a crash.

Every malformed variant must either be read correctly (shapes as announced) or raise a
:class:`~stacrrn.errors.StacrrnError` whose message is one line. Anything else (a rasterio,
GDAL, pystac or Python exception) escaping the readers is a bug.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from stacrrn.errors import InputError, StacrrnError, UnreadableRasterError
from stacrrn.io.band_choice import asset_bands, choose_assets, is_raster
from stacrrn.io.raster import RasterInfo, open_raster, read_on_grid, read_window
from stacrrn.io.stac import (
    Search,
    asset_href,
    band_scaling,
    find_qa_asset,
    search_items,
    select_bands,
    sort_by_date,
    stac_items_of,
)
from stacrrn.types import Box, Grid
from tests.strategies import DELETE, Changes, garbage, json_values, mutate

pytestmark = [  # malformed input is expected to warn
    pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning"),
    pytest.mark.filterwarnings("ignore:Both proj.code and proj.epsg:UserWarning"),
]

SCALE = int(os.environ.get("STACRRN_FUZZ_SCALE", "1"))
"""Multiplier of every fuzz test's number of examples (e.g. 20 for a long local hunt)."""


def fuzz(examples: int) -> settings:
    """Hypothesis settings of a fuzz test: ``examples`` inputs (times ``$STACRRN_FUZZ_SCALE``), no deadline."""
    return settings(
        max_examples=examples * SCALE, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )


_names = itertools.count()


def check_error(exc: BaseException) -> None:
    """A refusal must come from the error tree with a one-line message."""
    assert isinstance(exc, StacrrnError), f"{type(exc).__name__} escaped: {exc!r}"
    assert "\n" not in str(exc), f"multi-line message: {str(exc)!r}"
    assert str(exc).strip(), "empty message"


def write(tmp: Path, data: bytes, suffix: str = ".tif") -> Path:
    path = tmp / f"f{next(_names)}{suffix}"
    path.write_bytes(data)
    return path


# --- rasters --------------------------------------------------------------------------------

SIZE, TILE, COUNT = 64, 16, 3


def geotiff_bytes(crs: str | None = "EPSG:32633", compress: str | None = "deflate", tiled: bool = True) -> bytes:
    """A small valid GeoTIFF: 64x64x3 uint16 with nodata 0, made in memory."""
    rng = np.random.default_rng(0)
    data = rng.integers(1, 4000, (COUNT, SIZE, SIZE), dtype=np.uint16)
    data[:, :5, :7] = 0
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": SIZE,
        "height": SIZE,
        "count": COUNT,
        "dtype": "uint16",
        "transform": from_origin(500000, 5000000, 10, 10),
        "nodata": 0,
    }
    if crs:
        profile["crs"] = crs
    if tiled:
        profile |= {"tiled": True, "blockxsize": TILE, "blockysize": TILE}
    if compress:
        profile["compress"] = compress
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data)
        return bytes(mem.read())


VALID = geotiff_bytes()
STRIPPED = geotiff_bytes(compress=None, tiled=False)


def windows(info: RasterInfo) -> list[Box]:
    """The first 64x64 pixels whole, the tiles of its diagonal, a window across tiles, the far corner.

    A corrupt header may announce a huge raster: the readers work window by window, so only
    windows are read (as the pipeline does), never the whole announced size.
    """
    h, w = min(info.height, SIZE), min(info.width, SIZE)
    out = [Box(0, 0, h, w)]
    out += [Box(k, k, min(k + TILE, h), min(k + TILE, w)) for k in range(0, min(h, w), TILE)]
    out.append(Box(TILE // 2, TILE // 2, min(h, TILE * 5 // 2), min(w, TILE * 5 // 2)))
    out.append(Box(max(0, info.height - TILE), max(0, info.width - TILE), info.height, info.width))
    return [b for b in out if not b.empty]


def exercise_raster(path: Path) -> Exception | None:
    """Open and read ``path`` as the pipeline does; success must have the right shapes.

    Returns the well-formed error that refused the file, or ``None`` when every read succeeded.
    """
    try:
        info = open_raster(path)
    except Exception as exc:  # the check is the assertion
        check_error(exc)
        return exc
    assert info.count >= 1 and info.width >= 1 and info.height >= 1
    bands = sorted(set(info.data_bands[:3] + info.data_bands[-1:]))  # a corrupt header may announce 65535
    if not bands:
        return None
    boxes = windows(info)
    # every window with all bands (as the pipeline reads), then each band alone over the first 64x64
    for box, band_list in [(box, bands) for box in boxes] + [(boxes[0], [b]) for b in bands]:
        try:
            data, valid = read_window(info, box, band_list)
        except Exception as exc:
            check_error(exc)
            return exc
        assert data.shape == (len(band_list), box.height, box.width)
        assert valid.shape == data.shape and valid.dtype == bool
    # the common grid: the raster's own (read directly) and a shifted one (warped)
    own = info.grid
    shifted = Grid(own.crs, (*own.transform[:2], own.transform[2] + 5.0, *own.transform[3:]), SIZE, SIZE)
    for grid in (own, shifted):
        box = Box(0, 0, min(grid.height, TILE * 2), min(grid.width, TILE * 2))
        try:
            values, ok = read_on_grid(info, grid, box, bands[:1])
        except Exception as exc:
            check_error(exc)
            return exc
        assert values.shape == (1, box.height, box.width) and values.dtype == np.float64
        assert ok.shape == (box.height, box.width)
    return None


def test_valid_geotiff_reads(tmp_path: Path) -> None:
    info = open_raster(write(tmp_path, VALID))
    assert (info.count, info.width, info.height, info.nodata) == (COUNT, SIZE, SIZE, 0.0)
    data, valid = read_window(info, Box(0, 0, SIZE, SIZE), [1, 2, 3])
    assert data.shape == (3, SIZE, SIZE) and not valid[:, :5, :7].any() and valid[:, 5:, 7:].all()
    assert exercise_raster(write(tmp_path, VALID)) is None  # a valid file reads in full


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"II*\x00",
        b"II*\x00\x08\x00\x00\x00",
        b"MM\x00*\xff\xff\xff\xff",
        b"II+\x00\x08\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00",
        b"not a raster at all\n",
        b"PK\x03\x04" + bytes(100),
        b"XX" + VALID[2:],  # wrong magic
        b"\x89PNG\r\n\x1a\n" + bytes(64),
        VALID[: len(VALID) // 2],
        VALID[:8],
    ],
    ids=lambda d: f"{len(d)}B",
)
def test_garbage_is_refused(tmp_path: Path, data: bytes) -> None:
    assert exercise_raster(write(tmp_path, data)) is not None  # refused (with a well-formed error), never read


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StacrrnError) as caught:
        open_raster(tmp_path / "missing.tif")
    check_error(caught.value)


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StacrrnError) as caught:
        open_raster(tmp_path)
    check_error(caught.value)


def test_no_crs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StacrrnError, match="no CRS") as caught:
        open_raster(write(tmp_path, geotiff_bytes(crs=None)))
    check_error(caught.value)


def test_file_removed_after_open_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    info = open_raster(path)
    path.unlink()
    with pytest.raises(StacrrnError) as caught:
        read_window(info, Box(0, 0, 4, 4), [1])
    check_error(caught.value)


@fuzz(60)
@given(cut=st.integers(0, len(VALID) - 1), base=st.sampled_from([VALID, STRIPPED]))
def test_truncated(tmp_path: Path, cut: int, base: bytes) -> None:
    exercise_raster(write(tmp_path, base[: min(cut, len(base) - 1)]))


def _overwrites(limit: int) -> st.SearchStrategy[list[tuple[int, bytes]]]:
    return st.lists(st.tuples(st.integers(0, limit - 1), st.binary(min_size=1, max_size=8)), min_size=1, max_size=6)


def _patched(base: bytes, patches: list[tuple[int, bytes]]) -> bytes:
    out = bytearray(base)
    for pos, chunk in patches:
        out[pos : pos + len(chunk)] = chunk[: len(out) - pos]
    return bytes(out)


@fuzz(150)
@given(patches=_overwrites(1024), base=st.sampled_from([VALID, STRIPPED]))
def test_header_overwritten(tmp_path: Path, patches: list[tuple[int, bytes]], base: bytes) -> None:
    """Random bytes written into the header and IFD region (the first KB)."""
    exercise_raster(write(tmp_path, _patched(base, patches)))


@fuzz(60)
@given(patches=_overwrites(len(VALID)))
def test_anywhere_overwritten(tmp_path: Path, patches: list[tuple[int, bytes]]) -> None:
    exercise_raster(write(tmp_path, _patched(VALID, patches)))


TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8}
"""Byte size of each TIFF field type."""


def ifd_entries(data: bytes) -> list[tuple[int, int, int, int, int | None]]:
    """``(tag, type, count, entry offset, data offset or None when inline)`` of a little-endian TIFF's first IFD."""
    ifd = struct.unpack_from("<I", data, 4)[0]
    out = []
    for k in range(struct.unpack_from("<H", data, ifd)[0]):
        pos = ifd + 2 + 12 * k
        tag, kind, count, value = struct.unpack_from("<HHII", data, pos)
        out.append((tag, kind, count, pos, value if TYPE_SIZES.get(kind, 1) * count > 4 else None))
    return out


SPECIAL_INTS = [0, 1, 2, 3, 7, 8, 15, 16, 17, 32, 255, 256, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF]
SPECIAL_DOUBLES = [0.0, -0.0, 5e-324, -10.0, 1e-12, 1e308, math.inf, -math.inf, math.nan]


@st.composite
def tag_edits(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few TIFF tags given edge values: their type, count, value, or one element of their array."""
    entries = ifd_entries(data)
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        _, kind, count, pos, external = draw(st.sampled_from(entries))
        field = draw(st.sampled_from(["type", "count", "value", "element"]))
        if field == "type":
            struct.pack_into("<H", out, pos + 2, draw(st.sampled_from([0, 1, 2, 3, 4, 5, 11, 12, 13, 16, 17, 0xFFFF])))
        elif field == "count":
            struct.pack_into("<I", out, pos + 4, draw(st.sampled_from(SPECIAL_INTS)))
        elif field == "value" or external is None:
            struct.pack_into("<I", out, pos + 8, draw(st.sampled_from(SPECIAL_INTS)))
        else:
            size = TYPE_SIZES.get(kind, 1)
            at = external + size * draw(st.integers(0, count - 1))
            if at + size > len(out):
                continue
            if kind == 12:
                struct.pack_into("<d", out, at, draw(st.sampled_from(SPECIAL_DOUBLES)))
            elif kind == 2:
                out[at : at + 4] = draw(st.binary(min_size=4, max_size=4))[: len(out) - at]
            else:
                value = draw(st.sampled_from(SPECIAL_INTS)) % (1 << (8 * size))
                out[at : at + size] = value.to_bytes(size, "little")
    return bytes(out)


@fuzz(150)
@given(data=tag_edits(VALID) | tag_edits(STRIPPED))
def test_tags_edited(tmp_path: Path, data: bytes) -> None:
    """Edge values in the TIFF tags: sizes, sample formats, tile offsets, pixel scale, tie point, geokeys, nodata."""
    exercise_raster(write(tmp_path, data))


@fuzz(60)
@given(
    flips=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 7)), min_size=1, max_size=4),
)
def test_bits_flipped(tmp_path: Path, flips: list[tuple[int, int]]) -> None:
    out = bytearray(VALID)
    for pos, bit in flips:
        out[pos] ^= 1 << bit
    exercise_raster(write(tmp_path, bytes(out)))


@fuzz(40)
@given(pos=st.integers(0, len(VALID)), garbage=st.binary(min_size=1, max_size=64))
def test_garbage_inserted(tmp_path: Path, pos: int, garbage: bytes) -> None:
    exercise_raster(write(tmp_path, VALID[:pos] + garbage + VALID[pos:]))


@fuzz(30)
@given(data=st.binary(max_size=512), prefix=st.sampled_from([b"", b"II*\x00", b"MM\x00*", b"II+\x00"]))
def test_random_bytes(tmp_path: Path, data: bytes, prefix: bytes) -> None:
    exercise_raster(write(tmp_path, prefix + data))


# --- STAC items -----------------------------------------------------------------------------


def valid_item(item_id: str = "a", day: int = 1) -> dict[str, Any]:
    """A valid STAC 1.1 item dict with raster, eo and projection metadata and two assets."""
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "id": item_id,
        "collection": "scenes",
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[10, 45], [10.1, 45], [10.1, 45.1], [10, 45.1], [10, 45]]],
        },
        "bbox": [10, 45, 10.1, 45.1],
        "properties": {"datetime": f"2024-06-{day:02d}T10:00:00Z", "proj:epsg": 32633, "eo:cloud_cover": 5},
        "links": [{"rel": "collection", "href": "./collection.json", "type": "application/json"}],
        "assets": {
            "B04": {
                "href": "B04.tif",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
                "eo:bands": [{"name": "B04", "common_name": "red"}],
                "raster:bands": [{"data_type": "uint16", "nodata": 0, "scale": 0.0001, "offset": 0}],
                "bands": [{"name": "B04", "eo:common_name": "red"}],
            },
            "rgb": {
                "href": "rgb.tif",
                "type": "image/tiff; application=geotiff",
                "roles": ["data"],
                "eo:bands": [{"name": "R", "common_name": "red"}, {"name": "G"}, {"name": "B"}],
            },
            "thumbnail": {"href": "t.png", "type": "image/png", "roles": ["thumbnail"]},
        },
    }


"""Values of the wrong type (and a few of the right type with wrong content)."""

# where a value lives in a valid item: a path of keys
ITEM_PATHS: list[tuple[str | int, ...]] = [
    ("type",),
    ("stac_version",),
    ("stac_extensions",),
    ("id",),
    ("collection",),
    ("geometry",),
    ("geometry", "type"),
    ("geometry", "coordinates"),
    ("bbox",),
    ("properties",),
    ("properties", "datetime"),
    ("properties", "start_datetime"),
    ("properties", "end_datetime"),
    ("properties", "proj:epsg"),
    ("properties", "proj:code"),
    ("properties", "eo:cloud_cover"),
    ("links",),
    ("links", 0),
    ("links", 0, "href"),
    ("links", 0, "rel"),
    ("assets",),
    ("assets", "B04"),
    ("assets", "B04", "href"),
    ("assets", "B04", "type"),
    ("assets", "B04", "roles"),
    ("assets", "B04", "eo:bands"),
    ("assets", "B04", "eo:bands", 0),
    ("assets", "B04", "eo:bands", 0, "name"),
    ("assets", "B04", "eo:bands", 0, "common_name"),
    ("assets", "B04", "raster:bands"),
    ("assets", "B04", "raster:bands", 0),
    ("assets", "B04", "raster:bands", 0, "scale"),
    ("assets", "B04", "bands"),
    ("assets", "B04", "bands", 0),
    ("assets", "B04", "bands", 0, "name"),
    ("assets", "B04", "bands", 0, "eo:common_name"),
    ("assets", "B04", "proj:epsg"),
    ("assets", "rgb"),
    ("assets", "rgb", "href"),
    ("assets", "rgb", "eo:bands"),
    ("assets", "thumbnail", "roles"),
]

dates = st.sampled_from(
    [
        *(DELETE, None, "", "x", "2024", "2024-06-01", "2024-06-01T10:00:00", "2024-06-01T10:00:00Z"),
        *("2024-13-45T99:00Z", "2024-06-01T10:00:00+05:00", "0001-01-01T00:00:00-23:59", "9999-12-31T23:59:59+14:00"),
        *(20240601, ["2024"]),
    ]
)
"""``datetime``/``start_datetime``/``end_datetime`` values, valid and not."""

mutations = st.lists(
    st.tuples(st.sampled_from(ITEM_PATHS), st.one_of(st.just(DELETE), garbage))
    | st.tuples(st.sampled_from([("properties", k) for k in ("datetime", "start_datetime", "end_datetime")]), dates)
    | st.tuples(st.just(("bbox",)), st.lists(st.floats() | st.integers() | st.text(max_size=2), max_size=7)),
    min_size=1,
    max_size=4,
)
"""Up to four changes to a valid item: a field deleted or replaced by garbage, dates, bboxes."""

searches = st.fixed_dictionaries(
    {},
    optional={
        "bbox": st.just((9.0, 44.0, 11.0, 46.0)),
        "datetime": st.sampled_from(["2024", "2024-06-01/2024-06-30", "../2024-06-02", "2020"]),
        "collections": st.just(("scenes",)),
        "ids": st.just(("a", "b")),
        "max_items": st.integers(1, 3),
    },
)
"""Options of a static search (filtering happens locally, on the malformed items)."""


ASSET_CHOICES: list[list[str] | None] = [None, ["B04"], ["red"], ["rgb"], ["rgb.2"], ["B04", "rgb.3"], ["nir"]]


def exercise_items(source: Search, assets: list[str] | None) -> None:
    """What the CLI does with item files: search, sort, select the bands, resolve hrefs and scaling."""
    try:
        items = search_items(source)
        assert items and items == sort_by_date(items)
        assert stac_items_of(items) is not None
        for item in items:
            find_qa_asset(item)
            assert all(c.key in item.assets for c in choose_assets(item))
            for asset in item.assets.values():
                is_raster(asset)
                assert all(isinstance(b, dict) for b in asset_bands(asset))
        selection = select_bands(items, assets)
        for item in items:
            for key in selection.assets:
                href = asset_href(item, key)
                assert isinstance(href, str)
            for ref in selection.bands:
                band_scaling(item.assets[ref.asset], ref.index)
    except Exception as exc:  # the check is the assertion
        check_error(exc)


def item_file(tmp: Path, obj: object) -> str:
    return str(write(tmp, json.dumps(obj).encode(), ".json"))


def test_valid_items_read(tmp_path: Path) -> None:
    paths = (item_file(tmp_path, valid_item("b", 3)), item_file(tmp_path, valid_item("a", 1)))
    items = search_items(Search(item_files=paths))
    assert [it.id for it in items] == ["a", "b"]
    selection = select_bands(items, ["B04", "rgb.2"])
    assert [(b.asset, b.index) for b in selection.bands] == [("B04", 1), ("rgb", 2)]
    assert asset_href(items[0], "B04") == str(tmp_path / "B04.tif")


@fuzz(250)
@given(
    changes=mutations,
    assets=st.sampled_from(ASSET_CHOICES),
    second=st.sampled_from([None, 1, 2]),
    options=searches,
)
def test_mutated_item_file(
    tmp_path: Path,
    changes: Changes,
    assets: list[str] | None,
    second: int | None,
    options: dict[str, Any],
) -> None:
    paths = [item_file(tmp_path, mutate(valid_item(), changes))]
    if second:  # a valid neighbour (same day or not): sorting and band resolution compare items
        paths.append(item_file(tmp_path, valid_item("b", second)))
    exercise_items(Search(item_files=tuple(paths), **options), assets)


@fuzz(120)
@given(changes=mutations, assets=st.sampled_from(ASSET_CHOICES), n=st.integers(1, 3), options=searches)
def test_mutated_item_collection(
    tmp_path: Path,
    changes: Changes,
    assets: list[str] | None,
    n: int,
    options: dict[str, Any],
) -> None:
    features = [valid_item(f"i{k}", 1 + k // 2) for k in range(n)]  # two on the same day
    features[-1] = mutate(features[-1], changes)
    path = item_file(tmp_path, {"type": "FeatureCollection", "features": features})
    exercise_items(Search(item_files=(path,), **options), assets)


@fuzz(60)
@given(
    collection=st.fixed_dictionaries(
        {},
        optional={
            "type": garbage | st.just("FeatureCollection"),
            "features": garbage | st.lists(garbage, max_size=3),
            "links": garbage,
        },
    )
)
def test_malformed_item_collection(tmp_path: Path, collection: dict[str, Any]) -> None:
    exercise_items(Search(item_files=(item_file(tmp_path, collection),)), None)


@fuzz(60)
@given(obj=json_values)
def test_arbitrary_json(tmp_path: Path, obj: object) -> None:
    exercise_items(Search(item_files=(item_file(tmp_path, obj),)), None)


@fuzz(40)
@given(text=st.text(max_size=64) | st.binary(max_size=64).map(lambda b: b.decode("latin-1")))
def test_not_json(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text.encode("utf-8", "surrogatepass"), ".json")
    exercise_items(Search(item_files=(str(path),)), None)
    raw = write(tmp_path, b"\xff\xfe\x00garbage" + text.encode("utf-8", "surrogatepass"), ".json")
    exercise_items(Search(item_files=(str(raw),)), None)


@fuzz(60)
@given(changes=mutations, what=st.sampled_from(["catalog", "collection"]))
def test_mutated_item_in_catalog(tmp_path: Path, changes: Changes, what: str) -> None:
    root = tmp_path / f"cat{next(_names)}"
    (root / "a").mkdir(parents=True)
    item = mutate(valid_item(), changes)
    if isinstance(item, dict):
        item["links"] = [{"rel": "root", "href": "../catalog.json"}, {"rel": "parent", "href": "../catalog.json"}]
    (root / "a" / "a.json").write_text(json.dumps(item))
    catalog: dict[str, Any] = {
        "type": "Catalog",
        "stac_version": "1.1.0",
        "id": "cat",
        "description": "fuzz",
        "links": [{"rel": "root", "href": "./catalog.json"}, {"rel": "item", "href": "./a/a.json"}],
    }
    if what == "collection":
        catalog |= {
            "type": "Collection",
            "license": "CC0-1.0",
            "extent": {"spatial": {"bbox": [[10, 45, 11, 46]]}, "temporal": {"interval": [[None, None]]}},
        }
    (root / "catalog.json").write_text(json.dumps(catalog))
    exercise_items(Search(catalog=str(root / "catalog.json")), None)


@fuzz(40)
@given(
    catalog=st.fixed_dictionaries(
        {"type": st.sampled_from(["Catalog", "Collection"]) | garbage},
        optional={
            "stac_version": garbage,
            "id": garbage,
            "description": garbage,
            "links": garbage | st.lists(st.fixed_dictionaries({"rel": garbage, "href": garbage}), max_size=2),
            "extent": garbage,
        },
    )
)
def test_malformed_catalog(tmp_path: Path, catalog: dict[str, Any]) -> None:
    path = item_file(tmp_path, catalog)
    exercise_items(Search(catalog=path), None)


def test_missing_item_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StacrrnError) as caught:
        search_items(Search(item_files=(str(tmp_path / "missing.json"),)))
    check_error(caught.value)


def test_missing_catalog_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StacrrnError) as caught:
        search_items(Search(catalog=str(tmp_path / "missing.json")))
    check_error(caught.value)


# --- regressions: the minimal inputs hypothesis found -------------------------------------------


def _with_tag_data(data: bytes, tag: int, payload: bytes, at: int = 0) -> bytes:
    """``data`` with ``payload`` written into the external data of ``tag``, ``at`` bytes in."""
    external = next(e[4] for e in ifd_entries(data) if e[0] == tag)
    assert external is not None
    out = bytearray(data)
    out[external + at : external + at + len(payload)] = payload
    return bytes(out)


PIXEL_SCALE, GEO_KEYS, GEO_ASCII = 33550, 34735, 34737
PROJECTED_CS_KEY, USER_DEFINED = 3072, 32767


@pytest.mark.parametrize("size", [math.nan, math.inf, -math.inf])
def test_degenerate_pixel_size_is_refused(tmp_path: Path, size: float) -> None:
    """A non-finite pixel size is refused when opening (it made grid offsets infinite)."""
    bad = _with_tag_data(VALID, PIXEL_SCALE, struct.pack("<dd", size, size))
    with pytest.raises(UnreadableRasterError, match="degenerate geotransform") as caught:
        open_raster(write(tmp_path, bad))
    check_error(caught.value)


def test_zero_pixel_size_is_refused(tmp_path: Path) -> None:
    """GDAL drops georeferencing with a zero pixel scale (CRS included)."""
    bad = _with_tag_data(VALID, PIXEL_SCALE, struct.pack("<dd", 0.0, 0.0))
    with pytest.raises(InputError) as caught:
        open_raster(write(tmp_path, bad))
    check_error(caught.value)


def test_tiny_pixel_size_on_a_shifted_grid(tmp_path: Path) -> None:
    """A 5e-324 pixel size made grid_offset's column offset infinite: OverflowError in round()."""
    info = open_raster(write(tmp_path, _with_tag_data(VALID, PIXEL_SCALE, struct.pack("<dd", 5e-324, 5e-324))))
    a, _, c, _, e, f = info.transform
    shifted = Grid(info.crs, (a, 0.0, c + 5.0, 0.0, e, f), 4, 4)
    try:
        values, valid = read_on_grid(info, shifted, Box(0, 0, 4, 4), [1])
    except StacrrnError as exc:
        check_error(exc)
    else:
        assert values.shape == (1, 4, 4) and not valid.any()


def test_crs_text_not_utf8_is_refused(tmp_path: Path) -> None:
    """A user-defined projected CRS named by a non-UTF-8 citation: rasterio raised UnicodeDecodeError from open."""
    external = next(e[4] for e in ifd_entries(VALID) if e[0] == GEO_KEYS)
    assert external is not None
    keys = list(struct.unpack_from("<32H", VALID, external))
    at = next(i for i in range(4, len(keys), 4) if keys[i] == PROJECTED_CS_KEY)
    bad = _with_tag_data(VALID, GEO_KEYS, struct.pack("<H", USER_DEFINED), at=2 * (at + 3))
    bad = _with_tag_data(bad, GEO_ASCII, b"\xbe\xff\xfe")
    with pytest.raises(UnreadableRasterError, match="cannot read") as caught:
        open_raster(write(tmp_path, bad))
    check_error(caught.value)


def _item_search(tmp: Path, changes: Changes, **options: Any) -> Search:
    features = [mutate(valid_item(), changes), valid_item("b", 1)]
    return Search(item_files=(item_file(tmp, {"type": "FeatureCollection", "features": features}),), **options)


@pytest.mark.parametrize(
    ("changes", "options", "words"),
    [
        ([(("assets", "B04", "type"), -1)], {}, "asset 'B04' has a 'type'"),  # AttributeError in is_raster
        ([(("assets", "B04", "type"), [True])], {}, "asset 'B04' has a 'type'"),
        ([(("assets", "B04", "roles"), -1)], {}, "asset 'B04' has 'roles'"),  # TypeError in is_raster
        ([(("assets", "B04", "roles"), [1])], {}, "asset 'B04' has 'roles'"),
        ([(("bbox",), [])], {"bbox": (9.0, 44.0, 11.0, 46.0)}, "bbox"),  # IndexError in _matches
        ([(("bbox",), ["a", 1, 2, 3])], {"bbox": (9.0, 44.0, 11.0, 46.0)}, "bbox"),  # TypeError in _matches
        ([(("bbox",), {"a": 1})], {"bbox": (9.0, 44.0, 11.0, 46.0)}, "bbox"),  # KeyError in _matches
        ([(("id",), 1)], {}, "id is not"),  # TypeError sorting 1 against 'b' (same datetime)
        ([(("id",), "a\nb")], {}, "id is not"),  # a multi-line id made multi-line messages
        (
            [
                (("properties", "datetime"), None),
                (("properties", "start_datetime"), "x"),
                (("properties", "end_datetime"), "y"),
            ],
            {},
            "datetime",
        ),  # ValueError in sort_by_date
        (
            [
                (("properties", "datetime"), None),
                (("properties", "start_datetime"), 5),
                (("properties", "end_datetime"), 6),
            ],
            {"datetime": "2024"},
            "datetime",
        ),  # TypeError in _matches
    ],
)
def test_malformed_item_regressions(tmp_path: Path, changes: Changes, options: dict[str, Any], words: str) -> None:
    with pytest.raises(InputError, match=words) as caught:
        search_items(_item_search(tmp_path, changes, **options))
    check_error(caught.value)


@pytest.mark.parametrize("scale", ["", "x", [], None, "nan", 1e400])
def test_raster_bands_scale_not_a_number(tmp_path: Path, scale: object) -> None:
    """A non-numeric raster:bands scale raised ValueError/TypeError from band_scaling."""
    items = search_items(_item_search(tmp_path, [(("assets", "B04", "raster:bands", 0, "scale"), scale)]))
    with pytest.raises(InputError, match="scale") as caught:
        band_scaling(items[0].assets["B04"], 1)
    check_error(caught.value)


@pytest.mark.parametrize("bands", [{"0": {"scale": 2}}, "scale", 5, [None]])
def test_raster_bands_not_a_list_is_ignored(tmp_path: Path, bands: object) -> None:
    """raster:bands that is not a list of objects gives no scaling (as asset_bands ignores it), not KeyError."""
    items = search_items(_item_search(tmp_path, [(("assets", "B04", "raster:bands"), bands)]))
    assert band_scaling(items[0].assets["B04"], 1) is None


def test_valid_scaling_and_bboxes(tmp_path: Path) -> None:
    items = search_items(_item_search(tmp_path, [(("bbox",), [10, 45, 0, 10.1, 45.1, 100])]))
    assert band_scaling(items[0].assets["B04"], 1) == (0.0001, 0.0)
    assert len(items) == 2
