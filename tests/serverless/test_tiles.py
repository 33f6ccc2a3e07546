"""Statistics tiles of the serverless stages: ``.npz`` archives of chunk moments, merged bit for bit.

The map stage stores one archive per tile; the solve stage sums their chunk moments in chunk
order and must fit the very model a single process fits. A damaged or missing tile stops the
solve with an error saying which tile to compute again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pystac
import pytest

from stacrrn.errors import InputError
from stacrrn.io.statistics_file import chunks_from_bytes
from stacrrn.pipeline.outputs.catalog import catalog_rasters
from stacrrn.pipeline.run import run
from stacrrn.pipeline.stages import TILES_PREFIX
from stacrrn.samples import write_sample_mosaic
from stacrrn.serverless import handlers

TILES = 3
PARAMS = {"references": ["tile_00"], "method": "global+local", "chunk_size": 64}


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("items")
    mosaic = write_sample_mosaic(tmp / "scenes", tiles=2, tile_size=96, overlap=32)
    return catalog_rasters(mosaic.paths, str(tmp / "catalog"), "tiles")[1]


def payload(items, out):
    return {
        "type": "FeatureCollection",
        "features": items,
        "process": {"upload_options": {"path_template": str(out)}, "tasks": {"stacrrn": PARAMS | {"tiles": TILES}}},
    }


def test_tiles_are_archives_whose_merge_fits_the_single_process_model(items, tmp_path):
    event = payload(items, tmp_path / "serverless")
    hrefs = [handlers.statistics(event | {"tile": t})["statistics"] for t in range(TILES)]
    fingerprint = hrefs[0].split("/")[-2]
    assert all(h.endswith(f"-of-{TILES:05d}.npz") and f"/{TILES_PREFIX}/{fingerprint}/" in h for h in hrefs)
    stored = [chunks_from_bytes(Path(h).read_bytes(), fingerprint) for h in hrefs]
    indices = [k for s in stored for k in s[0]]
    assert indices == list(range(len(indices))) and len(indices) > TILES  # every chunk once, in order

    solved = handlers.solve(event)
    single = run([pystac.Item.from_dict(d) for d in items], str(tmp_path / "single"), **PARAMS)
    assert solved["model_digest"] == single.model.digest()
    model = json.loads(Path(solved["model"]).read_text())
    assert model["global"] == json.loads(single.model.to_json())["global"]


def test_a_damaged_or_missing_tile_stops_the_solve_naming_the_tile(items, tmp_path):
    event = payload(items, tmp_path / "out")
    tile = Path(handlers.statistics(event | {"tile": 1})["statistics"])
    for t in (0, 2):
        handlers.statistics(event | {"tile": t})
    tile.write_bytes(tile.read_bytes()[:200])
    with pytest.raises(InputError, match=r"tile 1 of 3 .* damaged or of another stacrrn version"):
        handlers.solve(event)
    tile.unlink()  # and a tile an older stacrrn wrote is not read
    tile.with_suffix(".json").write_text(json.dumps({"tile": 1, "tiles": TILES, "chunks": []}))
    with pytest.raises(InputError, match="no statistics for tile 1 of 3"):
        handlers.solve(event)
