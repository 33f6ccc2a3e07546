"""The demo's output folders: replaced run after run, and never a folder the demo did not make."""

from __future__ import annotations

import pytest

from stacrrn.cli.demo_job import MARK, _replace_folder
from stacrrn.errors import OutputError


def test_a_folder_the_demo_made_is_replaced(tmp_path):
    target, made = tmp_path / "normalized", tmp_path / "new"
    target.mkdir()
    (target / MARK).touch()
    (target / "old.json").write_text("{}")
    made.mkdir()
    (made / "new.json").write_text("{}")
    assert _replace_folder(made, target) == target
    assert sorted(p.name for p in target.iterdir()) == sorted([MARK, "new.json"]) and not made.exists()


def test_a_folder_the_demo_did_not_make_is_never_deleted(tmp_path):
    target, made = tmp_path / "normalized", tmp_path / "new"
    target.mkdir()
    (target / "mine.tif").write_text("user data")
    made.mkdir()
    with pytest.raises(OutputError, match="was not written by stacrrn demo"):
        _replace_folder(made, target)
    assert (target / "mine.tif").read_text() == "user data"
