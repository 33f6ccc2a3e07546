"""Ordered, bounded task runs on threads and on a Dask cluster."""

from __future__ import annotations

import os
import sys

import pytest

from stacrrn.errors import ParameterError, UnreadableRasterError, report
from stacrrn.io.cog import COG_THREADS_ENV, cog_options
from stacrrn.pipeline.execution.parallel import WARM_MODULES, DaskWorkers, connect, imap_bounded, threads_of


def slow_square(x: int) -> int:
    """``x * x`` after work that shrinks with ``x``: later tasks tend to finish first (no sleep)."""
    sum(range((40 - x) * 5000))
    return x * x


def unreadable(x: int) -> int:
    raise UnreadableRasterError(f"cannot read pixels of tile_0{x + 1}.tif (corrupt or truncated?)")


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


def blas_threads() -> list[int]:
    """Threads of every BLAS library loaded in this process."""
    from threadpoolctl import threadpool_info

    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.mark.parametrize("workers", [1, 2])
def test_tasks_run_on_one_blas_thread_and_the_limit_ends_with_the_run(workers):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        assert before and max(before) == 2  # numpy's BLAS is loaded: the test can tell
        seen = list(imap_bounded(lambda _: blas_threads(), range(4), workers))
        assert all(threads == [1] * len(before) for threads in seen)
        assert blas_threads() == before  # restored when the run ends
        run = imap_bounded(lambda _: blas_threads(), range(4), workers)
        next(run)
        run.close()  # dropped half way: restored too
        assert blas_threads() == before


@pytest.mark.parametrize("workers", [1, 3])
def test_threads_keep_order_and_propagate_errors(workers):
    assert list(imap_bounded(slow_square, range(40), workers)) == [x * x for x in range(40)]
    with pytest.raises(ValueError, match="three"):
        list(imap_bounded(fail_on_three, range(10), workers))


def test_dask_cluster_keeps_order_forwards_settings_and_errors():
    with connect("local", 2) as cluster:
        assert isinstance(cluster, DaskWorkers) and threads_of(cluster) == 2
        # the workers imported what the pixel tasks run before the first task
        loaded = cluster.client.run(lambda: [name for name in WARM_MODULES if name in sys.modules])
        assert list(loaded.values()) == [list(WARM_MODULES)] * 2
        assert list(imap_bounded(slow_square, range(40), cluster)) == [x * x for x in range(40)]
        # set after the workers started: it reaches them only with the tasks
        os.environ["GDAL_STACRRN_TEST"] = "forwarded"
        try:
            seen = list(imap_bounded(lambda _: os.environ.get("GDAL_STACRRN_TEST"), range(4), cluster))
        finally:
            del os.environ["GDAL_STACRRN_TEST"]
        assert seen == ["forwarded"] * 4
        # single-threaded workers compress their COGs on one thread each (not every core each)
        options = list(imap_bounded(lambda _: cog_options()["NUM_THREADS"], range(2), cluster))
        assert options == ["1", "1"] and cog_options()["NUM_THREADS"] == os.environ.get(COG_THREADS_ENV, "ALL_CPUS")
        with pytest.raises(ValueError, match="three"):
            list(imap_bounded(fail_on_three, range(10), cluster))
        # an input error raised on a worker reaches the user as a local one: same type, one line, exit 2
        with pytest.raises(UnreadableRasterError, match="tile_01") as caught:
            list(imap_bounded(unreadable, range(2), cluster))
        assert report(caught.value).exit_code == 2


def test_connect_defaults_to_threads_and_rejects_bad_settings(monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with connect(None, 3) as workers:
        assert workers == 3
    with pytest.raises(ParameterError, match="at least 1"), connect(None, 0):
        pass
    with pytest.raises(ParameterError, match="cannot reach the Dask scheduler"), connect("tcp://127.0.0.1:9", 1):
        pass


def test_relative_inputs_reach_workers_that_run_in_another_folder(tmp_path, monkeypatch):
    """``match a.tif b.tif --scheduler tcp://...``: the workers started elsewhere still find the inputs."""
    from distributed import LocalCluster

    from stacrrn.pipeline.match import match
    from stacrrn.samples import write_sample_mosaic

    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    elsewhere.mkdir()
    tiles = write_sample_mosaic(data, tiles=2, tile_size=64, overlap=24).paths[:2]
    monkeypatch.chdir(elsewhere)  # the workers' folder, where the relative names mean nothing
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        monkeypatch.chdir(data)
        with connect(cluster.scheduler_address, 1) as workers:
            result = match([p.name for p in tiles], "out", method="global", workers=workers)
    assert len(result.outputs) == 2 and all((data / "out" / f"{p.stem}.tif").exists() for p in tiles)
