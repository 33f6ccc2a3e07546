"""A run's manifest, ``on_error="skip"`` for items that cannot be read, and one run at a time per output."""

from __future__ import annotations

import json
from pathlib import Path

import pystac
import pytest

from stacrrn.errors import MissingAssetError, RunLockedError, UnreadableRasterError
from stacrrn.io.lock import LOCK_KEY
from stacrrn.pipeline.outputs.catalog import catalog_rasters
from stacrrn.pipeline.outputs.manifest import MANIFEST_KEY
from stacrrn.pipeline.run import run
from stacrrn.samples import write_sample_mosaic


@pytest.fixture
def items(tmp_path) -> list[pystac.Item]:
    """Four overlapping tiles (2 x 2, ``tile_00`` .. ``tile_03``) as items with one COG asset ``image`` each."""
    tiles = write_sample_mosaic(tmp_path / "tiles", tiles=2, tile_size=96, overlap=32).paths
    _, dicts = catalog_rasters(tiles, str(tmp_path / "in"), "tiles")
    return [pystac.Item.from_dict(d) for d in dicts]


def manifest(out: Path) -> dict:
    return json.loads((out / MANIFEST_KEY).read_text())


def asset_path(item: pystac.Item) -> Path:
    return Path(item.assets["image"].get_absolute_href() or "")


def test_the_manifest_records_a_run_and_its_resumption(items, tmp_path):
    out = tmp_path / "out"
    first = run(items, str(out), workers=1, method="global")
    m = manifest(out)
    assert m["status"] == "complete" and m["counts"] == {"done": 4} and m["resumed_from"] is None
    assert m["model"]["digest"] == first.model.digest() and m["run_id"]
    assert m["items"]["tile_01"] == {"status": "done", "href": str(out / "tile_01" / "tile_01.json")}
    again = run(items, str(out), workers=1, method="global")
    m2 = manifest(out)
    assert sorted(again.reused) == [it.id for it in items] and m2["counts"] == {"kept": 4}
    assert m2["resumed_from"] == m["run_id"] != m2["run_id"]
    assert not (out / LOCK_KEY).exists()


def test_a_missing_asset_fails_the_run_or_is_skipped(items, tmp_path):
    items[2].assets["image"].href = str(tmp_path / "gone" / "tile_02.tif")
    with pytest.raises(MissingAssetError, match=r"item tile_02, asset 'image'.*No such file"):
        run(items, str(tmp_path / "strict"), workers=1, method="global")
    assert not (tmp_path / "strict").exists()
    out = tmp_path / "lenient"
    result = run(items, str(out), workers=1, method="global", on_error="skip")
    assert [d["id"] for d in result.items] == ["tile_00", "tile_01", "tile_03"]
    assert list(result.skipped) == ["tile_02"] and "tile_02.tif" in result.skipped["tile_02"]
    assert any(w.startswith("skipped item tile_02") for w in result.warnings)
    m = manifest(out)
    assert m["status"] == "complete" and m["counts"] == {"done": 3, "skipped": 1}
    assert m["items"]["tile_02"]["status"] == "skipped"
    collection = json.loads((out / "collection.json").read_text())
    assert sorted(link["href"] for link in collection["links"] if link["rel"] == "item") == [
        str(out / i / f"{i}.json") for i in ("tile_00", "tile_01", "tile_03")
    ]
    assert not (out / "tile_02").exists()


def test_an_item_that_fails_in_pass_2_is_skipped_and_the_rest_published(items, tmp_path):
    victim = asset_path(items[1])

    def lose_an_asset(stage: str, done: int, total: int) -> None:
        if stage == "apply" and done == 0:  # pass 1 read it; now it is gone (deleted, expired, ...)
            victim.unlink(missing_ok=True)

    out = tmp_path / "out"
    result = run(items, str(out), workers=1, method="global", on_error="skip", progress=lose_an_asset)
    assert [d["id"] for d in result.items] == ["tile_00", "tile_02", "tile_03"]
    assert list(result.skipped) == ["tile_01"]
    assert manifest(out)["items"]["tile_01"]["status"] == "skipped"
    assert not (out / "tile_01" / "tile_01.json").exists()


def test_a_run_that_stops_in_pass_2_says_why_in_its_manifest(items, tmp_path):
    victim = asset_path(items[1])

    def lose_an_asset(stage: str, done: int, total: int) -> None:
        if stage == "apply" and done == 0:
            victim.unlink(missing_ok=True)

    out = tmp_path / "out"
    with pytest.raises(UnreadableRasterError) as caught:
        run(items, str(out), workers=1, method="global", progress=lose_an_asset)
    m = manifest(out)
    assert m["status"] == "failed"
    assert m["reason"] == f"UnreadableRasterError: {str(caught.value).splitlines()[0]}" and "tile_01" in m["reason"]


def test_a_second_run_on_the_same_output_is_refused_and_writes_nothing(items, tmp_path):
    out = tmp_path / "out"
    seen: dict[str, object] = {}

    def start_another(stage: str, done: int, total: int) -> None:
        if stage == "apply" and "other" not in seen:
            before = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
            try:
                run(items, str(out), workers=1, method="local")
            except RunLockedError as exc:
                seen["other"] = exc
            seen["same"] = before == sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())

    result = run(items, str(out), workers=1, method="global", progress=start_another)
    assert isinstance(seen["other"], RunLockedError) and seen["same"]
    assert "being written by run" in str(seen["other"])
    assert len(result.items) == 4 and manifest(out)["status"] == "complete"
    assert not (out / LOCK_KEY).exists()


def test_match_refuses_a_folder_another_run_holds(tmp_path):
    from stacrrn import match
    from stacrrn.io.storage import Storage
    from tests.io.test_lock import holder

    tiles = write_sample_mosaic(tmp_path / "tiles", tiles=2, tile_size=64, overlap=16).paths
    out = tmp_path / "out"
    Storage(str(out)).create_text(LOCK_KEY, holder())
    with pytest.raises(RunLockedError, match="otherrun"):
        match(tiles, out, method="global")
    assert sorted(p.name for p in out.iterdir()) == [LOCK_KEY]
    (out / LOCK_KEY).unlink()
    assert len(match(tiles, out, method="global").outputs) == 4 and not (out / LOCK_KEY).exists()


def test_an_item_pass_1_cannot_read_is_skipped_and_pass_1_starts_over(items, tmp_path):
    cut = asset_path(items[3])
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) * 3 // 5])  # the header opens; tiles near the end are gone
    with pytest.raises(UnreadableRasterError, match="tile_03"):
        run(items, str(tmp_path / "strict"), workers=1, method="global")
    assert not (tmp_path / "strict").exists()
    out = tmp_path / "lenient"
    result = run(items, str(out), workers=2, method="global", on_error="skip")
    assert [d["id"] for d in result.items] == ["tile_00", "tile_01", "tile_02"]
    assert list(result.skipped) == ["tile_03"] and "tile_03" in result.skipped["tile_03"]
    assert [im.name for im in result.model.images] == ["tile_00", "tile_01", "tile_02"]
    assert manifest(out)["items"]["tile_03"]["status"] == "skipped"
    clean = run(items[:3], str(tmp_path / "three"), workers=1, method="global")
    assert result.model.digest() == clean.model.digest()  # as if tile_03 had never been there
