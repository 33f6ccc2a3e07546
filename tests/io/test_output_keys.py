"""Output keys derived from input ids: nothing outside the output prefix, no silent overwrites."""

from __future__ import annotations

from pathlib import Path

import pystac
import pytest

from stacrrn.errors import InputError
from stacrrn.io.output_keys import asset_file_name, check_item_id, check_output_keys
from stacrrn.io.storage import Storage
from stacrrn.pipeline.outputs.catalog import catalog_rasters
from stacrrn.pipeline.run import run
from stacrrn.samples import write_sample_mosaic


@pytest.mark.parametrize(
    "item_id",
    ["..", ".", "", "../../ESCAPE", "a/b", "a\\b", ".stacrrn-tmp", "stacrrn-statistics.npz", "collection.json",
     "stacrrn-statistics.json", "stacrrn-model-0123.json", "x" * 201, "tab\there"],
)  # fmt: skip
def test_ids_that_cannot_name_an_output_folder_are_refused(item_id):
    with pytest.raises(InputError, match="cannot name an output folder"):
        check_item_id(item_id)


@pytest.mark.parametrize("item_id", ["S2A_13TDE_20231008_0_L2A", "LC09_L2SP_092068_20230607_20230609_02_T1_SR", "a.b"])
def test_real_ids_are_accepted(item_id):
    check_item_id(item_id)


def test_asset_keys_become_distinct_single_segments():
    names = [asset_file_name(k) for k in ("red", "x/image", "y/image", "..", ".hidden", "a b", "B8A")]
    assert names == ["red", "x%2Fimage", "y%2Fimage", "%2E%2E", "%2Ehidden", "a%20b", "B8A"]
    assert all("/" not in n and not n.startswith(".") for n in names)


def test_duplicate_ids_and_run_asset_keys_are_refused():
    with pytest.raises(InputError, match="given 2 times"):
        check_output_keys(["a", "b", "a"], ["red"])
    for key in ("model", "blockmap", "clear-mask"):
        with pytest.raises(InputError, match="key of an asset stacrrn writes"):
            check_output_keys(["a"], [key])


def test_storage_deletes_only_what_it_owns(tmp_path):
    root = tmp_path / "out" / "a"
    storage = Storage(str(root))
    (root / "item").mkdir(parents=True)
    victim = tmp_path / "out" / "victim.tif"
    victim.write_text("keep me")
    inside = root / "item" / "old.tif"
    inside.write_text("superseded")
    storage.delete([f"{root}/item/../../victim.tif", f"{root}/../victim.tif", str(victim), f"{root}/item/old.tif"])
    assert victim.read_text() == "keep me" and not inside.exists()
    assert not storage.owns(f"{root}/") and not storage.owns(f"{root}/item//x") and storage.owns(f"{root}/item/x")


@pytest.fixture
def items(tmp_path) -> list[pystac.Item]:
    tiles = write_sample_mosaic(tmp_path / "tiles", tiles=2, tile_size=96, overlap=32).paths
    _, dicts = catalog_rasters(tiles, str(tmp_path / "in"), "tiles")
    return [pystac.Item.from_dict(d) for d in dicts]


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("bad_id", ["../../ESCAPE", "..", ".stacrrn-tmp", "stacrrn-statistics.npz", "x" * 300])
def test_a_run_with_an_id_that_cannot_name_outputs_writes_nothing_anywhere(items, tmp_path, bad_id):
    before = files_under(tmp_path)
    items[1].id = bad_id
    out = tmp_path / "out" / "a" / "b" / "c"
    with pytest.raises(InputError, match="cannot name an output folder"):
        run(items, str(out), workers=1, method="global")
    assert files_under(tmp_path) == before and not out.exists()


def test_assets_with_the_same_last_key_part_get_their_own_files(items, tmp_path):
    for item in items:
        image = item.assets.pop("image")
        item.add_asset("x/image", image.clone())
        item.add_asset("y/image", image.clone())
    result = run(items, str(tmp_path / "out"), assets=["x/image", "y/image"], workers=1, method="global")
    for d in result.items:
        hrefs = {d["assets"][k]["href"] for k in ("x/image", "y/image")}
        assert len(hrefs) == 2 and all(Path(h).parent == tmp_path / "out" / d["id"] for h in hrefs)
        for key in ("x/image", "y/image"):  # each checksum describes its own file
            assert Path(d["assets"][key]["href"]).stat().st_size == d["assets"][key]["file:size"]


def test_a_data_asset_named_like_a_run_asset_is_refused_before_writing(items, tmp_path):
    for item in items:
        item.add_asset("model", item.assets.pop("image"))
    out = tmp_path / "out"
    with pytest.raises(InputError, match="key of an asset stacrrn writes"):
        run(items, str(out), assets=["model"], workers=1, method="global")
    assert not out.exists()
