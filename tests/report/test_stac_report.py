"""A report of a ``stacrrn run`` published to S3 (moto server on loopback), read back over s3://."""

import datetime as dt

import pystac

from stacrrn.pipeline.outputs.catalog import catalog_rasters
from stacrrn.pipeline.run import run
from stacrrn.report import build_report, load_run, rgb_bands

BANDS = ["blue", "green", "red", "nir"]


def test_report_of_a_stac_run_on_s3(s3, bucket, match_run, tmp_path):
    paths = [im.path for im in match_run.result.model.images]
    when = [dt.datetime(2021, 5, 27, 11, k, tzinfo=dt.UTC) for k in range(len(paths))]
    _, items = catalog_rasters(paths, f"s3://{bucket}/in", "s2", band_names=BANDS, split_bands=True, datetimes=when)
    result = run([pystac.Item.from_dict(d) for d in items], f"s3://{bucket}/out", references=["t00"], n_blocks=6)

    outputs = load_run(f"s3://{bucket}/out")
    assert outputs.kind == "stac" and outputs.is_remote and outputs.notes == ()
    assert outputs.model.digest() == result.model.digest()
    assert outputs.band_labels == tuple(BANDS) and outputs.band_names == tuple(BANDS)
    assert rgb_bands(outputs) == [2, 1, 0]  # red, green, blue by their common names
    first = outputs.images[0]
    assert [s.href.rsplit("/", 1)[-1] for s in first.before] == [f"{b}.tif" for b in BANDS]  # the input item's assets
    assert all(s.href.startswith(f"s3://{bucket}/out/t00/") for s in first.after)
    assert first.datetime.startswith("2021-05-27") and outputs.reference_map.startswith(f"s3://{bucket}/out/")
    assert load_run(result.collection_href).images == outputs.images
    assert load_run(result.model_href).images == outputs.images

    report = build_report(f"s3://{bucket}/out", tmp_path / "report")
    text = report.html.read_text()
    assert set(report.figures) == {
        "mosaic",
        "profiles",
        "overlap-graph",
        "local-correction",
        "block-maps",
        "quicklooks",
    }
    assert "stacrrn run (STAC)" in text and "2021-05-27" in text and report.notes == ()
    assert "R: red, G: green, B: blue (by their common names)" in text  # the mosaic's and the quick-looks' bands
    assert all(im.before and im.after for im in outputs.images)
