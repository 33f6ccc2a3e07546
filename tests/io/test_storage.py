"""Publishing files: moved into place locally, uploaded to S3, the local file gone either way."""

from __future__ import annotations

import os

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
