"""Bad input, as a table: every case exits with code 2, prints one line that names the problem, writes nothing.

Each case builds its inputs from two real overlapping sample tiles (uint16, 4 bands), spoils
one thing, runs the command as a user would (in-process through typer's runner, or the
serverless module's ``main``), and checks the exit code, the single ``error:`` line, the
absence of a traceback, and that the output location holds no file afterwards.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio import Affine
from typer.testing import CliRunner

from stacrrn.cli.app import app
from stacrrn.samples import write_sample_mosaic
from stacrrn.serverless.__main__ import main as serverless_main
from stacrrn.services import free_port
from tests.conftest import write_like, write_raster
from tests.io.web import Web

runner = CliRunner()


@pytest.fixture(scope="module")
def web() -> Iterator[Web]:
    """A loopback HTTP server the cases serve STAC answers from."""
    with Web() as server:
        yield server


@pytest.fixture(scope="module")
def good(tmp_path_factory, web: Web) -> dict[str, Any]:
    """Two overlapping tiles, a static catalog of them (one COG asset ``image`` per item), a web server."""
    folder = tmp_path_factory.mktemp("good")
    tiles = write_sample_mosaic(folder, tiles=2, tile_size=96, overlap=32).paths[:2]
    result = runner.invoke(
        app, ["catalog", *map(str, tiles), "--out", str(folder / "cat"), "--datetime", "2024-06-01T10:00:00Z"]
    )
    assert result.exit_code == 0, result.output
    return {"t0": tiles[0], "t1": tiles[1], "cat": folder / "cat" / "collection.json", "folder": folder, "web": web}


@dataclass(frozen=True)
class Case:
    """A command line built from the good inputs and a scratch folder; words the error must contain."""

    name: str
    args: Callable[[dict[str, Path], Path], list[str]]
    words: tuple[str, ...]
    serverless: bool = False


def _spoil(good: dict[str, Path], tmp: Path, data: np.ndarray, **profile: object) -> str:
    return str(write_like(good["t1"], tmp / "spoiled.tif", data, **profile))


def _tile(good: dict[str, Path]) -> np.ndarray:
    with rasterio.open(good["t1"]) as src:
        return src.read()


def missing_crs(good, tmp):
    with rasterio.open(good["t1"]) as src:
        profile, data = src.profile, src.read()
    profile.pop("crs")
    with rasterio.open(tmp / "nocrs.tif", "w", **profile) as dst:
        dst.write(data)
    return ["match", str(good["t0"]), str(tmp / "nocrs.tif")]


def engineering_crs(good, tmp):
    from rasterio.crs import CRS

    spoiled = _spoil(good, tmp, _tile(good), crs=CRS.from_wkt('LOCAL_CS["site grid",UNIT["metre",1]]'))
    return ["match", str(good["t0"]), spoiled]


def three_bands(good, tmp):
    return ["match", str(good["t0"]), _spoil(good, tmp, _tile(good)[:3])]


def float_mix(good, tmp):
    return ["match", str(good["t0"]), _spoil(good, tmp, _tile(good).astype("float32") / 1e4, nodata=np.nan)]


def complex_pixels(good, tmp):
    return ["match", str(good["t0"]), _spoil(good, tmp, _tile(good).astype("complex64"), nodata=None)]


def all_nodata(good, tmp):
    return ["match", str(good["t0"]), _spoil(good, tmp, np.zeros_like(_tile(good)))]


def corrupt(good, tmp):
    (tmp / "corrupt.tif").write_bytes(b"II*\x00" + bytes(range(256)) * 8)
    return ["match", str(good["t0"]), str(tmp / "corrupt.tif")]


def truncated(good, tmp):
    data = good["t1"].read_bytes()
    (tmp / "cut.tif").write_bytes(data[: len(data) * 2 // 3])
    return ["match", str(good["t0"]), str(tmp / "cut.tif")]


def far_away(good, tmp):
    # 10 km east of the tiles (which start at 500000, 4500000): no overlap, and a common grid of a sane size
    far = write_raster(tmp / "far.tif", _tile(good), Affine(10, 0, 510000, 0, -10, 4500000), nodata=0)
    return ["match", str(good["t0"]), str(far)]


def two_groups(good, tmp):
    a = write_raster(tmp / "far_a.tif", _tile(good), Affine(10, 0, 510000, 0, -10, 4500000), nodata=0)
    b = write_raster(tmp / "far_b.tif", _tile(good), Affine(10, 0, 510500, 0, -10, 4500000), nodata=0)
    return ["match", str(good["t0"]), str(good["t1"]), str(a), str(b)]


def same_name(good, tmp):
    (tmp / "other").mkdir()
    return ["match", str(good["t0"]), str(shutil.copy(good["t0"], tmp / "other" / good["t0"].name))]


def _pair(good):
    return [str(good["t0"]), str(good["t1"])]


def _items(good, tmp, edit: Callable[[dict], None] | None = None) -> list[str]:
    """The catalog's two items as item files, the second one edited."""
    paths = []
    for k, stem in enumerate(("tile_00", "tile_01")):
        d = json.loads((good["cat"].parent / stem / f"{stem}.json").read_text())
        for asset in d["assets"].values():
            asset["href"] = str((good["cat"].parent / stem / asset["href"]).resolve())
        if k == 1 and edit is not None:
            edit(d)
        path = tmp / f"{stem}.json"
        path.write_text(json.dumps(d))
        paths.append(str(path))
    return paths


def _missing_asset(d: dict) -> None:
    d["assets"]["image"]["href"] = "/nonexistent/tile_01.tif"


def _escaping_id(d: dict) -> None:
    d["id"] = "../../ESCAPE"


def _run_file_id(d: dict) -> None:
    d["id"] = "stacrrn-statistics.npz"


def all_nodata_item(good, tmp):
    empty = _spoil(good, tmp, np.zeros_like(_tile(good)))

    def edit(d: dict) -> None:
        d["assets"]["image"]["href"] = empty

    return ["run", *_items(good, tmp, edit)]


def not_json(good, tmp):
    paths = _items(good, tmp)
    Path(paths[1]).write_text("{not json")
    return ["run", *paths]


def _landing(body: str) -> Callable[[dict[str, Any], Path], list[str]]:
    """A STAC API whose landing page is ``body``."""
    return lambda g, t: ["search", "--stac", g["web"].serve(f"/landing-{len(body)}/", body)]


def catalog_cycle(good, tmp):
    """Catalog a links child b, b links child a."""
    for name, other in (("a", "b"), ("b", "a")):
        links = [{"rel": "root", "href": "./a.json"}, {"rel": "child", "href": f"./{other}.json"}]
        body = {"type": "Catalog", "stac_version": "1.0.0", "id": name, "description": name, "links": links}
        (tmp / f"{name}.json").write_text(json.dumps(body))
    return ["run", "--catalog", str(tmp / "a.json")]


def served_items(good: dict[str, Any], name: str, href: str) -> str:
    """The catalog's two items as an ItemCollection on the web server, every asset at ``href``; its URL."""
    features = []
    for stem in ("tile_00", "tile_01"):
        d = json.loads((good["cat"].parent / stem / f"{stem}.json").read_text())
        d["links"] = []
        for asset in d["assets"].values():
            asset["href"] = href
        features.append(d)
    return good["web"].serve(f"/{name}/items.json", {"type": "FeatureCollection", "features": features})


def _event(tmp: Path, event: object) -> str:
    path = tmp / "event.json"
    path.write_text(json.dumps(event))
    return str(path)


def _payload(good, tmp, **task: object) -> dict:
    features = [json.loads(Path(p).read_text()) for p in _items(good, tmp)]
    tasks = {"stacrrn": {"method": "global", **task}}
    return {"type": "FeatureCollection", "features": features, "process": {"tasks": tasks}}


CASES = [
    Case("missing CRS", missing_crs, ("CRS", "nocrs.tif")),
    Case("CRS that PROJ cannot transform", engineering_crs, ("site grid", "cannot be transformed")),
    Case("3 vs 4 bands", three_bands, ("band",)),
    Case("uint16 and float32 mixed", float_mix, ("mix data types", "uint16", "float32")),
    Case("complex pixels", complex_pixels, ("complex64", "gdal_translate")),
    Case("all-nodata image", all_nodata, ("no valid pixel",)),
    Case("corrupt TIFF", corrupt, ("corrupt.tif",)),
    Case("truncated TIFF", truncated, ("cut.tif",)),
    Case("zero overlap", far_away, ("overlap",)),
    Case("two groups, no reference", two_groups, ("2 groups", "--reference")),
    Case("missing file", lambda g, t: ["match", str(g["t0"]), str(t / "nope.tif")], ("nope.tif",)),
    Case("one input", lambda g, t: ["match", str(g["t0"])], ("at least two",)),
    Case("two inputs with one name", same_name, ("both named",)),
    Case("unknown reference", lambda g, t: ["match", *_pair(g), "-r", "zzz"], ("zzz", "tile_00")),
    Case("unknown method", lambda g, t: ["match", *_pair(g), "--method", "magic"], ("magic",)),
    Case(
        "unknown --local-extent",
        lambda g, t: ["match", *_pair(g), "--local-extent", "nope"],
        ("--local-extent", "'nope'", "overlaps, image"),
    ),
    Case("local decay 0", lambda g, t: ["match", *_pair(g), "--local-decay", "0"], ("--local-decay", "0")),
    Case("blocks finer than pixels", lambda g, t: ["match", *_pair(g), "--blocks", "5000"], ("--blocks", "pixels")),
    Case("negative block size", lambda g, t: ["match", *_pair(g), "--block-size", "-5"], ("--block-size",)),
    Case("infinite block size", lambda g, t: ["match", *_pair(g), "--block-size", "inf"], ("--block-size",)),
    Case("infinite resolution", lambda g, t: ["match", *_pair(g), "--resolution", "inf"], ("--resolution",)),
    Case(
        "grid far finer than the inputs",
        lambda g, t: ["match", *_pair(g), "--resolution", "0.001"],
        ("common grid would be", "--resolution"),
    ),
    Case("item id leaving the output", lambda g, t: ["run", *_items(g, t, _escaping_id)], ("cannot name an output",)),
    Case("item id of a run file", lambda g, t: ["run", *_items(g, t, _run_file_id)], ("stacrrn-statistics.npz",)),
    Case("band 5 of 4", lambda g, t: ["match", *_pair(g), "--bands", "1,5"], ("band",)),
    Case("zero workers", lambda g, t: ["match", *_pair(g), "--workers", "0"], ("--workers",)),
    Case("fidelity sample 0", lambda g, t: ["match", *_pair(g), "--fidelity-every", "0"], ("--fidelity-every",)),
    Case("empty search", lambda g, t: ["run", "--catalog", str(g["cat"]), "--bbox", "-10,-10,-9,-9"], ("no item",)),
    Case("bad bbox", lambda g, t: ["run", "--catalog", str(g["cat"]), "--bbox", "1,2,3"], ("--bbox",)),
    Case("bad datetime", lambda g, t: ["run", "--catalog", str(g["cat"]), "--datetime", "yesterday"], ("--datetime",)),
    Case("unknown asset key", lambda g, t: ["run", "--catalog", str(g["cat"]), "--assets", "swir16"], ("swir16",)),
    Case("item file not JSON", not_json, ("tile_01.json",)),
    Case("all-nodata item", all_nodata_item, ("no valid pixel",)),
    Case("missing asset (404)", lambda g, t: ["run", *_items(g, t, _missing_asset)], ("tile_01", "image")),
    Case("unknown --on-error", lambda g, t: ["run", *_items(g, t), "--on-error", "retry"], ("--on-error",)),
    Case("fidelity sample -1", lambda g, t: ["run", *_items(g, t), "--fidelity-every", "-1"], ("--fidelity-every",)),
    Case("run: unknown --local-extent", lambda g, t: ["run", *_items(g, t), "--local-extent", "all"], ("'all'",)),
    Case("run: local decay inf", lambda g, t: ["run", *_items(g, t), "--local-decay", "inf"], ("--local-decay",)),
    Case(
        "STAC API not answering",
        lambda g, t: ["run", "--stac", f"http://127.0.0.1:{free_port()}"],
        ("did not answer",),
    ),
    Case("STAC API landing page []", _landing("[]"), ("did not answer", "landing page")),
    Case("STAC API landing page null", _landing("null"), ("did not answer", "landing page")),
    Case("static catalog with a link cycle", catalog_cycle, ("cycle", "a.json", "b.json")),
    Case(
        "remote items pointing at /etc/passwd",
        lambda g, t: ["run", served_items(g, "passwd", "/etc/passwd")],
        ("'/etc/passwd'", "this machine", "--allow-local-hrefs"),
    ),
    Case(
        "remote items pointing at a /vsicurl/ path",
        lambda g, t: ["run", served_items(g, "vsicurl", f"/vsicurl/{g['web'].url}/vsicurl/tile.tif")],
        ("/vsicurl/http://", "--allow-local-hrefs"),
    ),
    Case(
        "event not a FeatureCollection",
        lambda g, t: ["apply", "--event", _event(t, {"type": "Feature"})],
        ("FeatureCollection",),
        serverless=True,
    ),
    Case(
        "event not JSON",
        lambda g, t: ["solve", "--event", str(g["t0"])],
        ("cannot read the event",),
        serverless=True,
    ),
    Case(
        "apply event without a model",
        lambda g, t: ["apply", "--event", _event(t, _payload(g, t)), "--item", "tile_00"],
        ("'model'",),
        serverless=True,
    ),
    Case(
        "fidelity sample not a number",
        lambda g, t: ["solve", "--event", _event(t, _payload(g, t, fidelity_every="all"))],
        ("fidelity_every",),
        serverless=True,
    ),
    Case(
        "local_params extent unknown",
        lambda g, t: ["solve", "--event", _event(t, _payload(g, t, local_params={"extent": "everywhere"}))],
        ("--local-extent", "'everywhere'"),
        serverless=True,
    ),
    Case(
        "local_params decay not a number",
        lambda g, t: ["solve", "--event", _event(t, _payload(g, t, local_params={"decay": "3"}))],
        ("local_params", "'decay'", "a number"),
        serverless=True,
    ),
    Case(
        "unknown run parameter",
        lambda g, t: ["solve", "--event", _event(t, _payload(g, t, colour="blue"))],
        ("colour",),
        serverless=True,
    ),
]


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case: Case, good, tmp_path, monkeypatch, capsys):
    scratch = tmp_path / "inputs"
    scratch.mkdir()
    out = tmp_path / "out"
    args = case.args(good, scratch)
    if case.serverless:
        monkeypatch.setenv("STACRRN_OUTPUT", str(out))
        code = serverless_main(args)
        captured = capsys.readouterr()
        stderr, payload = captured.err, json.loads(captured.out)
        assert payload["exit_code"] == code and payload["message"] in stderr
    else:
        result = runner.invoke(app, [*args, "--out", str(out)] if args[0] in ("match", "run") else args)
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
            f"{type(result.exception).__name__}: {result.exception}"
        )
        code, stderr = result.exit_code, result.stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    assert "Traceback" not in stderr
    for word in case.words:
        assert word in lines[0], lines[0]
    assert _files(out) == [], f"{case.name} left {_files(out)}"
