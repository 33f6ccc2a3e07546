"""`stacrrn seamlines` and `stacrrn mosaic` on the command line: outputs and one-line errors."""

from __future__ import annotations

import json

import pytest
import rasterio

from tests.cli.test_cli import assert_user_error, run_cli
from tests.conftest import S2_TILES, needs_shared

TILES = [str(p) for p in S2_TILES[:6]]


@needs_shared
def test_mosaic_and_seamlines_commands(tmp_path):
    out = tmp_path / "mosaic"
    name = S2_TILES[0].stem
    proc = run_cli(
        "mosaic",
        *TILES,
        "-o",
        str(out),
        "--bands",
        "1,3,5,8",
        "--priority",
        f"{name}=2",
        "--seams",
        "least-cost",
        "--feather",
        "16",
    )
    assert proc.returncode == 0, proc.stderr
    assert "seam jump" in proc.stdout
    with rasterio.open(out / "mosaic.tif") as src:
        assert src.count == 4 and src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    item = json.loads((out / "mosaic.json").read_text())
    assert item["properties"]["rrn:mosaic"]["seams"] == "least-cost"
    lines = tmp_path / "lines"
    proc = run_cli("seamlines", *TILES, "-o", str(lines))
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in lines.iterdir()} == {"seamlines.geojson", "seamlines.parquet", "footprints.geojson"}
    features = json.loads((lines / "seamlines.geojson").read_text())["features"]
    assert sorted(f["properties"]["image"] for f in features) == sorted(p.rsplit("/", 1)[1][:-4] for p in TILES)


BAD = [
    (["--feather", "-1"], ["--feather"]),
    (["--priority", "nonsense"], ["NAME=WEIGHT"]),
    (["--priority", "nobody=2"], ["not one of the inputs"]),
    (["--priority", f"{S2_TILES[0].stem if S2_TILES else 'x'}=0"], ["positive"]),
    (["--seams", "zigzag"], ["--seams", "least-cost"]),
    (["--seams", "least-cost", "--seam-corridor", "0"], ["--seam-corridor"]),
    (["--priority-by", "cloud-cover"], ["--priority-by needs STAC items"]),
    (["--bands", "red"], ["band numbers"]),
]


@needs_shared
@pytest.mark.parametrize(("args", "words"), BAD, ids=[" ".join(a)[:30] for a, _ in BAD])
def test_bad_mosaic_input_is_one_line_exit_2_and_nothing_written(tmp_path, args, words):
    out = tmp_path / "out"
    assert_user_error(run_cli("mosaic", *TILES[:2], "-o", str(out), *args), *words)
    assert not (out / "mosaic.json").exists() and not (out / "mosaic.tif").exists()
