import json
from pathlib import Path

import pytest

from stacrrn.errors import InputError
from stacrrn.pipeline.match import MODEL_FILE
from stacrrn.report import default_out_dir, load_run


def test_match_folder_and_its_model_json_load_the_same_run(match_run):
    by_folder = load_run(match_run.out)
    by_model = load_run(str(match_run.out / MODEL_FILE))
    assert by_folder.images == by_model.images and by_folder.root == by_model.root
    assert by_model.model.digest() == by_folder.model.digest()
    assert by_folder.kind == "match" and not by_folder.is_remote
    assert by_folder.model.digest() == match_run.result.model.digest()
    assert by_folder.band_labels == ("1", "2", "3", "4")  # the distorted tiles hold the 4 bands
    for im, out in zip(by_folder.images, match_run.result.outputs, strict=True):
        assert [s.href for s in im.after] == [out.path] * 4 and [s.index for s in im.after] == [1, 2, 3, 4]
        assert [s.index for s in im.before] == [1, 2, 3, 4] and Path(im.before[0].href).name == f"{im.name}.tif"
        assert im.field_map == str(match_run.out / "blockmaps" / f"{im.name}_field.tif")
    assert by_folder.reference_map == str(match_run.out / "blockmaps" / "reference.tif")
    assert by_folder.notes == ()


def test_missing_or_foreign_runs_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_run(tmp_path / "nowhere")
    with pytest.raises(InputError, match="neither"):
        load_run(tmp_path)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"type": "Feature"}))
    with pytest.raises(InputError, match="neither a stacrrn model"):
        load_run(other)
    (tmp_path / MODEL_FILE).write_text("{not json")
    with pytest.raises(InputError):
        load_run(tmp_path)


def test_default_report_folder(tmp_path):
    assert default_out_dir(tmp_path) == tmp_path / "report"
    assert default_out_dir(str(tmp_path / "collection.json")) == tmp_path / "report"
    assert default_out_dir("s3://bucket/run") == Path("stacrrn-report")
