"""SIGKILL a run at random points of pass 2 and publication, resume it, and get what a clean run gets.

The run is the ``stacrrn run`` command in a child process writing to the loopback S3. It
is killed in pass 2 as its log reports a random number of its 9 items published (several
seeds), while the next item is being written; the kill follows the run's own events, never a
delay. At that
moment every item a STAC search can see must be whole (all its assets exist, with the
bytes its ``file:checksum`` promises); after ``stacrrn run`` is started again, the output
prefix must hold exactly the objects of a clean run, byte for byte (item and collection
JSON compared without their timestamps and hrefs' prefix, the manifest without its run
ids), and no temporary object.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
import s3fs

from stacrrn.pipeline.outputs.catalog import catalog_rasters
from stacrrn.samples import write_sample_mosaic
from tests.pipeline.run_comparison import assert_same_outputs, assert_visible_items_whole, objects


def start_run(items: list[str], out: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", "from stacrrn.cli.app import main; main()", "--log-json", "run", *items]
    return subprocess.Popen([*command, "--out", out, "--workers", "1"], stderr=subprocess.PIPE, text=True)


def wait_for(proc: subprocess.Popen[str], published: int) -> None:
    """Read the run's JSON log until pass 2 has started and ``published`` items are out (an event each)."""
    assert proc.stderr is not None
    seen, started = 0, False
    for line in proc.stderr:
        event = json.loads(line)
        started |= event.get("event") == "progress" and event.get("stage") == "apply"
        seen += event.get("event") == "item"
        if started and seen >= published:
            return
    raise AssertionError(f"the run ended before pass 2 had published {published} items (exit {proc.wait()})")


def finish(proc: subprocess.Popen[str]) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err


@pytest.fixture(scope="module")
def inputs(s3, tmp_path_factory) -> tuple[list[str], str]:
    import uuid

    bucket = f"kill-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(bucket)
    folder = tmp_path_factory.mktemp("kill")
    tiles = write_sample_mosaic(folder / "tiles", tiles=3, tile_size=160, overlap=40, gradient=0.2).paths
    _, dicts = catalog_rasters(tiles, f"s3://{bucket}/in", "tiles", band_names=["blue", "green", "red", "nir"])
    files = []
    for d in dicts:
        path = folder / f"{d['id']}.json"
        path.write_text(json.dumps(d))
        files.append(str(path))
    return files, bucket


@pytest.fixture(scope="module")
def clean(inputs) -> dict[str, bytes]:
    files, bucket = inputs
    finish(start_run(files, f"s3://{bucket}/clean"))
    return objects(s3fs.S3FileSystem(), f"{bucket}/clean")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_killed_run_resumes_to_the_clean_result(inputs, clean, seed):
    files, bucket = inputs
    reference = clean
    fs = s3fs.S3FileSystem()
    out = f"{bucket}/killed-{seed}"
    published = random.Random(seed).randrange(0, 6)  # kill as the run reports that many items published
    proc = start_run(files, f"s3://{out}")
    wait_for(proc, published)
    proc.kill()  # at least 4 of 9 items, the model's record and the collection are still to come
    assert proc.wait() == -9, "the run ended before it was killed"
    assert_visible_items_whole(fs, out)
    finish(start_run(files, f"s3://{out}"))
    resumed = objects(fs, out)
    assert assert_visible_items_whole(fs, out) == 9
    manifest = json.loads(resumed.pop("stacrrn-manifest.json"))
    assert manifest["status"] == "complete" and manifest["resumed_from"] is not None
    reference = {k: v for k, v in reference.items() if k != "stacrrn-manifest.json"}  # kept vs done
    assert_same_outputs(resumed, out, reference, f"{bucket}/clean")
