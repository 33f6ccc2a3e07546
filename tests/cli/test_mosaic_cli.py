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


@needs_shared
def test_mosaic_normalized_while_blending_with_a_model_and_bad_models(tmp_path):
    fitted = tmp_path / "fitted"
    proc = run_cli("match", *TILES[:3], "-o", str(fitted), "--method", "global", "--bands", "1,3,5,8")
    assert proc.returncode == 0, proc.stderr
    model = fitted / "stacrrn-model.json"
    out = tmp_path / "mosaic"
    proc = run_cli("mosaic", *TILES[:3], "-o", str(out), "--bands", "1,3,5,8", "--model", str(model), "-q")
    assert proc.returncode == 0, proc.stderr
    digest = json.loads((out / "mosaic.json").read_text())["properties"]["rrn:mosaic"]["model"]
    with rasterio.open(fitted / f"{S2_TILES[0].stem}.tif") as src:
        assert src.tags()["STACRRN_MODEL"] == digest
    (tmp_path / "other.json").write_text('{"images": []}')
    bad = [
        ([*TILES[:3], "--model", str(tmp_path / "missing.json")], ["cannot read the model"]),
        ([*TILES[:3], "--model", str(tmp_path / "other.json")], ["is not a stacrrn model"]),
        ([*TILES[:4], "--model", str(model)], [S2_TILES[3].stem, "not in the model"]),
        ([*TILES[:3], "--model", str(model), "--bands", "1,3"], ["band(s)", "select the bands"]),
    ]
    for args, words in bad:
        target = tmp_path / "bad"
        assert_user_error(run_cli("mosaic", *args, "-o", str(target)), *words)
        assert not target.exists() or not any(target.rglob("mosaic.*"))
