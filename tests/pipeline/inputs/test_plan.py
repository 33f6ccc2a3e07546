import pytest

from stacrrn.pipeline.inputs import plan
from stacrrn.pipeline.inputs.plan import chunk_runs, in_chunk_order
from stacrrn.types import Box


def grid_of_chunks(n: int, edge: int = 10) -> list[Box]:
    """``n x n`` chunks of ``edge`` pixels in row-major order, the last row and column cut short."""
    return [
        Box(r * edge, c * edge, r * edge + (edge if r < n - 1 else 3), c * edge + (edge if c < n - 1 else 4))
        for r in range(n)
        for c in range(n)
    ]


def test_runs_are_squares_of_chunks_read_column_by_column():
    boxes = grid_of_chunks(8)
    runs = chunk_runs(boxes, threads=1)
    assert len(runs) == 4 and all(len(run) == 16 for run in runs)  # squares of 4 x 4 chunks
    assert sorted(k for run in runs for k in run) == list(range(64))
    first = runs[0]
    assert first[:5] == [0, 8, 16, 24, 1]  # down the first column, then the next
    assert {(boxes[k].row0 // 40, boxes[k].col0 // 40) for k in runs[3]} == {(1, 1)}
    assert [min(run) for run in runs] == sorted(min(run) for run in runs)


@pytest.mark.parametrize(("threads", "side"), [(1, 2), (2, 1)])
def test_squares_shrink_until_every_thread_has_runs_enough(threads, side):
    """One square of 4 x 4 is too few: squares of 2 x 2 give 4 runs, enough for 1 thread, not for 2."""
    assert plan.RUNS_PER_THREAD == 4
    runs = chunk_runs(grid_of_chunks(4), threads=threads)
    assert len(runs) == 16 // side**2
    assert all(len(run) == side * side for run in runs)


def test_quarters_of_a_split_chunk_stay_in_one_run():
    quarters = [Box(0, 0, 5, 5), Box(0, 5, 5, 10), Box(5, 0, 10, 5), Box(5, 5, 10, 10)]  # row-major in the chunk
    after = [Box(0, 10, 10, 20), Box(0, 20, 10, 30), Box(0, 30, 10, 40), Box(0, 40, 10, 50)]
    runs = chunk_runs(quarters + after, threads=2)  # side 1: each chunk alone, its quarters together
    assert runs == [[0, 2, 1, 3], [4], [5], [6], [7]]


def test_chunks_not_held_open_run_alone():
    boxes = grid_of_chunks(8)
    held = [k % 8 >= 4 for k in range(64)]  # the left half meets many images (a time series)
    runs = chunk_runs(boxes, threads=1, held=held)
    assert [[k] for k in range(64) if not held[k]] == [run for run in runs if len(run) == 1]
    assert sorted(len(run) for run in runs if len(run) > 1) == [16, 16]
    assert chunk_runs([]) == []


def test_results_come_back_in_chunk_order_as_soon_as_they_can():
    runs = [[0, 2], [1, 3], [4]]
    consumed = []

    def results():
        for run in runs:
            consumed.append(run)
            yield [f"r{k}" for k in run]

    out = in_chunk_order(runs, results())
    assert next(out) == "r0" and consumed == [[0, 2]]  # chunk 0 does not wait for the other runs
    assert list(out) == ["r1", "r2", "r3", "r4"]
