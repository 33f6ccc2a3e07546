import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from stacrrn.errors import UnreadableRasterError
from stacrrn.io import raster
from stacrrn.io.raster import datasets_held, open_raster, read_window
from stacrrn.types import Box


@pytest.fixture
def tiled(tmp_path):
    path = tmp_path / "tiled.tif"
    data = np.random.default_rng(0).integers(1, 4000, (3, 200, 180)).astype(np.uint16)
    profile = dict(driver="GTiff", width=180, height=200, count=3, dtype="uint16", nodata=0, crs="EPSG:32633")
    profile |= dict(transform=from_origin(500000, 4500000, 10, 10), tiled=True, blockxsize=64, blockysize=64)
    with rasterio.open(path, "w", **profile, compress="zstd") as dst:
        dst.write(data)
    return open_raster(path), data


def windows():
    return [Box(10, 10 + 50 * k, 110, 60 + 50 * k) for k in range(3)] + [Box(100, 0, 200, 180)]


def test_held_datasets_read_the_same_pixels_and_close_at_the_end(tiled):
    info, data = tiled
    plain = [read_window(info, box, [1, 2, 3]) for box in windows()]
    with datasets_held():
        held = [read_window(info, box, [1, 2, 3]) for box in windows()]
        (src,) = raster._held.datasets.values()
        with datasets_held():  # nested: the same datasets
            read_window(info, windows()[0], [2])
            assert list(raster._held.datasets.values()) == [src]
        assert not src.closed
    assert src.closed and raster._held.datasets is None
    for (a, va), (b, vb), box in zip(plain, held, windows(), strict=True):
        assert np.array_equal(a, b) and np.array_equal(va, vb)
        assert np.array_equal(a, data[:, box.row0 : box.row1, box.col0 : box.col1])


def test_each_thread_holds_its_own_datasets(tiled):
    info, _ = tiled
    seen = {}

    def work(name):
        with datasets_held():
            read_window(info, windows()[1], [1])
            seen[name] = next(iter(raster._held.datasets.values()))

    with datasets_held():
        read_window(info, windows()[0], [1])
        threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        mine = next(iter(raster._held.datasets.values()))
        assert len({id(mine), id(seen["a"]), id(seen["b"])}) == 3 and not mine.closed


def test_a_failed_read_drops_the_held_dataset(tiled, tmp_path):
    info, _ = tiled
    cut = tmp_path / "cut.tif"
    whole = Path(info.path).read_bytes()
    cut.write_bytes(whole)
    broken = open_raster(cut)
    with datasets_held():
        read_window(broken, Box(0, 0, 64, 64), [1])
        assert len(raster._held.datasets) == 1
        cut.write_bytes(whole[:6000])  # truncated under the open dataset
        with pytest.raises(UnreadableRasterError):
            read_window(broken, Box(128, 128, 200, 180), [1, 2, 3])
        assert raster._held.datasets == {}


CACHE_SCRIPT = """
import ctypes, sys
import numpy as np
from stacrrn.io.cog import cog_writer
from stacrrn.io.raster import _gdal
from stacrrn.types import Box, Grid
lib = _gdal()
lib.GDALGetCacheMax64.restype = ctypes.c_int64
before = lib.GDALGetCacheMax64() >> 20
grid = Grid("EPSG:32633", (10.0, 0.0, 500000.0, 0.0, -10.0, 4500000.0), 64, 64)
with cog_writer(sys.argv[1], grid, 1, "uint16", 0) as w:
    w.write(Box(0, 0, 64, 64), np.ones((1, 64, 64), np.uint16))
print(before, lib.GDALGetCacheMax64() >> 20)
"""


@pytest.mark.parametrize(("setting", "capped"), [(None, True), ("300", False)])
def test_writing_a_cog_caps_the_block_cache_unless_the_user_set_it(tmp_path, setting, capped):
    env = {k: v for k, v in os.environ.items() if k != "GDAL_CACHEMAX"}
    env |= {"GDAL_CACHEMAX": setting} if setting else {}
    out = subprocess.run(
        [sys.executable, "-c", CACHE_SCRIPT, str(tmp_path / "x.tif")], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    before, after = map(int, out.stdout.split())
    if capped:  # GDAL's default is 5 % of RAM
        assert after == min(before, raster.BLOCK_CACHE_MB)
    else:
        assert before == after == 300


def test_at_most_a_few_datasets_are_held_the_least_recent_closed(tiled, tmp_path, monkeypatch):
    info, data = tiled
    monkeypatch.setattr(raster, "HELD_DATASETS", 3)
    copies = []
    for k in range(5):
        copy = tmp_path / f"copy{k}.tif"
        copy.write_bytes(Path(info.path).read_bytes())
        copies.append(open_raster(copy))
    with datasets_held():
        read_window(copies[0], Box(0, 0, 64, 64), [1])
        first = raster._held.datasets[copies[0].path]
        for c in copies[1:]:
            got, _ = read_window(c, Box(0, 0, 64, 64), [1])
            assert np.array_equal(got[0], data[0, :64, :64])
        assert list(raster._held.datasets) == [c.path for c in copies[2:]] and first.closed


READDIR_SCRIPT = """
import ctypes, json, sys
from stacrrn.io import raster
raster.list_no_remote_folders()
raster.probe_local_sidecars("/data/scenes/a.tif")
lib = raster._gdal()
lib.VSIGetPathSpecificOption.argtypes = [ctypes.c_char_p] * 3
lib.VSIGetPathSpecificOption.restype = ctypes.c_char_p
key = raster.READDIR_OPTION.encode()
print(json.dumps({p: lib.VSIGetPathSpecificOption(p.encode(), key, b"NO").decode() for p in sys.argv[1:]}))
"""


def test_no_folder_is_listed_on_open():
    """In a job's process GDAL lists no folder on open: a bucket's is taken as empty, an input's probed file by file.

    Other local folders keep GDAL's default (listed).
    """
    env = {k: v for k, v in os.environ.items() if k != raster.READDIR_OPTION}
    paths = ["/vsis3/bucket/a.tif", "/vsicurl/https://example.org/a.tif", "/vsiaz/container/a.tif"]
    paths += ["/data/scenes/b.tif", "/data/scenes-2/a.tif", "/data/a.tif"]
    out = subprocess.run([sys.executable, "-c", READDIR_SCRIPT, *paths], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    expected = ["EMPTY_DIR", "EMPTY_DIR", "EMPTY_DIR", "TRUE", "NO", "NO"]
    assert json.loads(out.stdout) == dict(zip(paths, expected, strict=True))
