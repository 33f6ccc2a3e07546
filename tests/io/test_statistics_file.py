"""The statistics archive: bit-exact round trips, and a miss (never an error) for anything else."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from stacrrn.core.statistics import ChunkStatistics
from stacrrn.io import statistics_file as sf
from stacrrn.io.files import TMP_DIR
from tests.core.test_statistics_arrays import assert_identical, chunks_of, merged

FP = "a" * 64


@pytest.fixture(scope="module")
def stats():
    return merged(6)


@pytest.fixture(scope="module")
def archive(stats):
    return sf.statistics_to_bytes(stats, FP)


def test_round_trip_through_bytes_and_files_is_bit_exact(stats, archive, tmp_path):
    assert_identical(sf.statistics_from_bytes(archive, FP).to_arrays(), stats.to_arrays())
    path = tmp_path / "stacrrn-statistics.npz"
    sf.write_statistics(path, stats, FP)
    assert path.read_bytes() == archive  # deterministic: the same statistics give the same bytes
    assert_identical(sf.read_statistics(path, FP).to_arrays(), stats.to_arrays())
    assert not any((tmp_path / TMP_DIR).glob("*"))  # written through a temporary file, renamed


def test_a_plain_npz_with_its_tags_inside(stats, archive):
    with np.load(io.BytesIO(archive), allow_pickle=False) as npz:
        assert str(npz["meta.format"]) == "stacrrn-statistics" and int(npz["meta.version"]) == sf.VERSION
        assert str(npz["meta.kind"]) == "statistics" and str(npz["meta.fingerprint"]) == FP
        assert npz["pairs.index"].shape == (len(stats.pairs), 2)
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}


def test_compressed_archives_are_read_too(stats):
    packed = sf.statistics_to_bytes(stats, FP, level=6)
    with zipfile.ZipFile(io.BytesIO(packed)) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}
    assert_identical(sf.statistics_from_bytes(packed, FP).to_arrays(), stats.to_arrays())


def test_other_plan_kind_or_version_is_a_miss(stats, archive, monkeypatch):
    assert sf.statistics_from_bytes(archive, "b" * 64) is None
    chunks = sf.chunks_to_bytes([0], chunks_of(2)[:1], FP)
    assert sf.statistics_from_bytes(chunks, FP) is None and sf.chunks_from_bytes(archive, FP) is None
    monkeypatch.setattr(sf, "VERSION", sf.VERSION + 1)  # written by a later stacrrn
    newer = sf.statistics_to_bytes(stats, FP)
    monkeypatch.undo()
    assert sf.statistics_from_bytes(newer, FP) is None


def test_missing_empty_json_and_foreign_files_are_a_miss(stats, tmp_path):
    assert sf.read_statistics(tmp_path / "absent.npz", FP) is None
    assert sf.read_statistics(tmp_path, FP) is None  # a folder
    assert sf.statistics_from_bytes(None, FP) is None and sf.statistics_from_bytes(b"", FP) is None
    old = json.dumps({"fingerprint": FP, "statistics": stats.to_dict()}).encode()  # the former JSON cache
    assert sf.statistics_from_bytes(old, FP) is None
    other = io.BytesIO()
    np.savez(other, x=np.arange(3))
    assert sf.statistics_from_bytes(other.getvalue(), FP) is None
    pickled = io.BytesIO()
    np.savez(pickled, **{"meta.format": np.array([{"a": 1}], dtype=object)})
    assert sf.statistics_from_bytes(pickled.getvalue(), FP) is None  # never unpickled


def test_tags_right_but_arrays_wrong_is_a_miss(stats):
    arrays = stats.to_arrays()
    arrays["pair_blocks.sums"] = arrays["pair_blocks.sums"][:-1]
    assert sf.statistics_from_bytes(sf.encode(arrays, FP, sf.STATISTICS), FP) is None


def test_truncated_or_flipped_bytes_are_a_miss_or_the_same_statistics(stats, archive):
    """Damage anywhere: CRC-32 of every member catches the data; the rest fails to parse or changes nothing."""
    rng = np.random.default_rng(1)
    expected = stats.to_arrays()
    for cut in [1, 10, 100, *rng.integers(0, len(archive), 40).tolist(), len(archive) - 1]:
        assert sf.statistics_from_bytes(archive[:cut], FP) is None
    outcomes = {"miss": 0, "same": 0}
    for position in [*rng.integers(0, len(archive), 300).tolist(), *range(len(archive) - 200, len(archive))]:
        damaged = bytearray(archive)
        damaged[position] ^= 1 << int(rng.integers(0, 8))
        back = sf.statistics_from_bytes(bytes(damaged), FP)
        if back is None:
            outcomes["miss"] += 1
        else:  # a flag or timestamp nobody reads: the statistics are still whole
            assert_identical(back.to_arrays(), expected)
            outcomes["same"] += 1
    assert outcomes["miss"] > 400


def test_chunks_of_a_tile_round_trip_with_empty_chunks():
    chunks = [*chunks_of(5), ChunkStatistics(), *chunks_of(3, seed=2), ChunkStatistics()]
    indices = [4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    data = sf.chunks_to_bytes(indices, chunks, FP)
    got_indices, got = sf.chunks_from_bytes(data, FP)
    assert got_indices == indices and len(got) == len(chunks)
    for a, b in zip(got, chunks, strict=True):
        assert_identical(a.to_arrays(), b.to_arrays())
        assert a.to_dict() == b.to_dict()
    with np.load(io.BytesIO(data)) as npz:  # one array per kind, however many chunks
        assert len(npz.files) == len(ChunkStatistics().to_arrays()) + 3 + 4
    assert sf.chunks_from_bytes(sf.chunks_to_bytes([], [], FP), FP) == ([], [])
    assert sf.chunks_from_bytes(data, "b" * 64) is None
    assert sf.chunks_from_bytes(data[: len(data) // 2], FP) is None


def test_chunk_row_counts_that_do_not_add_up_are_a_miss():
    data = sf.chunks_to_bytes([0, 1], chunks_of(2)[:2], FP)
    arrays = sf.decode(data, FP, sf.CHUNKS)
    arrays["chunks.rows"] = arrays["chunks.rows"] + 1
    assert sf.chunks_from_bytes(sf.encode(arrays, FP, sf.CHUNKS), FP) is None
