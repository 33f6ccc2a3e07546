"""Publishing files: moved into place locally, uploaded to S3, the local file gone either way."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from stacrrn.io.storage import Storage


def test_move_file_renames_into_a_local_folder(tmp_path):
    local = tmp_path / "work" / "a.tif"
    local.parent.mkdir()
    local.write_bytes(b"pixels")
    inode = local.stat().st_ino
    storage = Storage(str(tmp_path / "out"))
    href = storage.move_file(local, "item/a.tif")
    final = tmp_path / "out" / "item" / "a.tif"
    assert href == storage.href("item/a.tif") and final.read_bytes() == b"pixels"
    assert final.stat().st_ino == inode and not local.exists()  # renamed, not copied


def test_move_file_copies_across_file_systems(tmp_path, monkeypatch):
    local = tmp_path / "a.tif"
    local.write_bytes(b"pixels")
    storage = Storage(str(tmp_path / "out"))
    real_replace = os.replace

    def cross_device(src, dst):
        if os.fspath(src) == os.fspath(local):
            raise OSError(18, "Invalid cross-device link")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", cross_device)
    storage.move_file(local, "a.tif")
    assert (tmp_path / "out" / "a.tif").read_bytes() == b"pixels" and not local.exists()


def test_move_file_uploads_to_s3(s3, bucket, tmp_path):
    local = tmp_path / "a.tif"
    local.write_bytes(b"pixels")
    storage = Storage(f"s3://{bucket}/run")
    href = storage.move_file(local, "item/a.tif")
    assert href == f"s3://{bucket}/run/item/a.tif" and not local.exists()
    assert storage.read_text("item/a.tif") == "pixels"


@pytest.mark.parametrize("key", ["a.tif", "deep/er/a.tif"])
def test_move_file_leaves_no_temporary_file(tmp_path, key):
    local = tmp_path / "a.tif"
    local.write_bytes(b"x")
    Storage(str(tmp_path / "out")).move_file(local, key)
    files = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert files == [key]


SIDECAR_SCRIPT = """
import json, sys
from stacrrn.io.raster import open_raster, read_window
from stacrrn.io.storage import configure_cloud
from stacrrn.types import Box
configure_cloud()
info = open_raster(sys.argv[1])
_, valid = read_window(info, Box(0, 0, 64, 64), [1])
print(json.dumps({"transform": list(info.transform[:6]), "valid_rows": valid[0].all(axis=1).tolist()}))
"""


def test_local_sidecars_still_count_once_the_cloud_is_configured(tmp_path):
    """A job that reads S3 (``configure_cloud``) still reads a local GeoTIFF's ``.msk`` mask and ``.tfw`` world file.

    In a fresh process, as a job's: rasterio leaves the options of its environments in GDAL's
    global configuration, so a long test process is not a clean one.
    """
    import numpy as np
    import rasterio

    path = tmp_path / "scene.tif"
    profile = {"driver": "GTiff", "width": 64, "height": 64, "count": 1, "dtype": "uint16", "crs": "EPSG:32633"}
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=False), rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((1, 64, 64), 500, dtype=np.uint16))
        dst.write_mask(np.repeat([255, 0], 32).astype(np.uint8)[:, None].repeat(64, axis=1))  # lower half masked
    (tmp_path / "scene.tfw").write_text("10\n0\n0\n-10\n500005\n4500005\n")  # pixel centres, as world files give
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tfw", "scene.tif", "scene.tif.msk"]

    env = {k: v for k, v in os.environ.items() if k != "GDAL_DISABLE_READDIR_ON_OPEN"}
    out = subprocess.run([sys.executable, "-c", SIDECAR_SCRIPT, str(path)], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    read = json.loads(out.stdout)
    assert read["transform"] == [10.0, 0.0, 500000.0, 0.0, -10.0, 4500010.0]  # corner: centre + half a pixel
    assert read["valid_rows"] == [True] * 32 + [False] * 32


OPEN_SCRIPT = """
import logging, sys
logging.basicConfig(level=logging.DEBUG, format="%(message)s")  # GDAL's curl trace, through rasterio's logger
import rasterio
if sys.argv[2] == "configured":
    from stacrrn.io.storage import configure_cloud
    configure_cloud()
with rasterio.open(sys.argv[1]) as src:
    print(int(src.read().sum()))
"""


def _s3_requests(href: str, how: str, env: dict[str, str]) -> list[str]:
    """The HTTP requests GDAL makes to open and read ``href`` in a fresh process, configured or not."""
    trace = dict(env, CPL_DEBUG="ON", CPL_CURL_VERBOSE="YES")
    out = subprocess.run([sys.executable, "-c", OPEN_SCRIPT, href, how], env=trace, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == str(64 * 64)
    return [line.split("HEADER_OUT: ", 1)[1] for line in out.stderr.splitlines() if "CURL_INFO_HEADER_OUT: " in line]


def test_a_configured_job_lists_no_bucket_folder_when_it_opens_a_raster(s3, bucket):
    """No LIST request per remote open (the folder holds other objects, which a listing would fetch)."""
    import boto3
    import numpy as np
    from rasterio.io import MemoryFile
    from rasterio.transform import from_origin

    client = boto3.client("s3")
    profile = {"driver": "GTiff", "width": 64, "height": 64, "count": 1, "dtype": "uint8", "crs": "EPSG:32633"}
    with MemoryFile() as memory:
        with memory.open(transform=from_origin(5e5, 6e6, 10, 10), **profile) as dst:
            dst.write(np.ones((1, 64, 64), dtype=np.uint8))
        client.put_object(Bucket=bucket, Key="scenes/a.tif", Body=memory.read())
    for k in range(3):
        client.put_object(Bucket=bucket, Key=f"scenes/other-{k}.tif", Body=b"not read")
    env = {k: v for k, v in os.environ.items() if k != "GDAL_DISABLE_READDIR_ON_OPEN"}
    href = f"/vsis3/{bucket}/scenes/a.tif"

    plain = _s3_requests(href, "plain", env)  # GDAL's default: the folder is listed
    assert any(r.startswith(f"GET /{bucket}/?") and "prefix=scenes" in r for r in plain), plain
    configured = _s3_requests(href, "configured", env)
    assert not any(r.startswith(f"GET /{bucket}/?") for r in configured), configured
    assert len(configured) == len(plain) - 1
