from stacrrn.pipeline.inputs.plan import chunk_runs
from stacrrn.types import Box


def test_chunk_runs_follow_rows_and_stop_at_gaps_and_length():
    row0 = [Box(0, c, 10, c + 10) for c in range(0, 60, 10)]  # six neighbours
    row1 = [Box(10, 0, 20, 10), Box(10, 20, 20, 30), Box(10, 30, 20, 40)]  # a gap after the first
    boxes = row0 + row1
    assert chunk_runs(boxes, most=4) == [[0, 1, 2, 3], [4, 5], [6], [7, 8]]
    assert [k for run in chunk_runs(boxes, most=2) for k in run] == list(range(len(boxes)))
    assert chunk_runs([]) == []


def test_quarters_of_a_split_chunk_form_one_run():
    quarters = [Box(0, 0, 5, 5), Box(0, 5, 5, 10), Box(5, 0, 10, 5), Box(5, 5, 10, 10)]  # row-major in the chunk
    after = [Box(0, 10, 10, 20)]  # the next (unsplit) chunk of the row
    assert chunk_runs(quarters + after, most=4) == [[0, 1, 2, 3], [4]]
    assert chunk_runs(quarters + after, most=8) == [[0, 1, 2, 3, 4]]
