"""Running independent tasks in order with bounded concurrency: threads or a Dask cluster.

Every pixel pass is a sequence of independent tasks (chunks of pass 1, items of pass 2)
whose results are reduced in task order. :func:`imap_bounded` runs them:

- on ``workers`` threads of this process (an ``int``): GDAL and NumPy release the GIL
  during reads and array arithmetic, so threads scale for the pixel passes;
- on a ``dask.distributed`` cluster (a :class:`DaskWorkers`): each task is a Dask task; the
  task function (with the plan it closes over) is sent to the workers once, the GDAL/AWS
  settings of this process travel with every task, and only the tasks' small results
  (moments, item JSON) come back to this process.

Either way at most ``2 * threads`` tasks are in flight, which bounds memory to a few chunks
whatever the number of tasks, and results come back in submission order, so reductions over
them are identical (bit for bit) whatever the engine and the number of workers.
"""

from __future__ import annotations

import importlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import rasterio
from threadpoolctl import threadpool_limits

from stacrrn.errors import ParameterError

if TYPE_CHECKING:
    from distributed import Client

T = TypeVar("T")
R = TypeVar("R")

ENV_PREFIXES = ("AWS_", "GDAL_", "CPL_", "VSI_", "STACRRN_")
"""Environment variables forwarded to Dask workers with every task (S3 endpoint, GDAL tuning)."""

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"

WORKER_ENVIRON: dict[str, int] = {
    "MALLOC_TRIM_THRESHOLD_": 1 << 30,
    "MALLOC_MMAP_THRESHOLD_": 1 << 30,
    "OMP_NUM_THREADS": 1,
    "MKL_NUM_THREADS": 1,
    "OPENBLAS_NUM_THREADS": 1,
    "STACRRN_COG_THREADS": 1,
}
"""Environment of LocalCluster workers. Dask's default ``MALLOC_TRIM_THRESHOLD_=65536`` makes
glibc map and fault in every chunk-sized temporary array afresh: pass 1 ran 25 % slower in a
worker than in the client. Keeping freed memory for reuse gives back the client's speed; set
the same variables on the workers of an external cluster."""


@dataclass(frozen=True)
class DaskWorkers:
    """A connected ``dask.distributed`` client: where tasks run instead of local threads.

    Attributes
    ----------
    client
        The client (of a LocalCluster or of an existing cluster's scheduler).
    """

    client: Client

    @property
    def threads(self) -> int:
        """Total worker threads of the cluster (at least 1)."""
        return max(1, int(sum(self.client.nthreads().values())))


Workers = int | DaskWorkers
"""Where pixel tasks run: a number of local threads, or a Dask cluster."""


def threads_of(workers: Workers) -> int:
    """Concurrency of ``workers``: the thread count, or the cluster's total worker threads."""
    return workers.threads if isinstance(workers, DaskWorkers) else workers


def check_workers(workers: Workers) -> None:
    """Raise :class:`ParameterError` for fewer than one worker thread."""
    if not isinstance(workers, DaskWorkers) and workers < 1:
        raise ParameterError(f"--workers must be at least 1, got {workers}")


def forwarded_environment() -> dict[str, str]:
    """The GDAL/AWS settings of this process that workers must share (see :data:`ENV_PREFIXES`)."""
    return {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}


_configured: dict[str, str] = {}


def _call_with_environment(fn: Callable[[T], R], item: T, env: dict[str, str]) -> R:
    """Run ``fn(item)`` on a worker after adopting the client's GDAL/AWS settings (once per process)."""
    global _configured
    if env != _configured:
        os.environ.update(env)
        from stacrrn.io.storage import configure_cloud

        configure_cloud()
        _configured = env
    with rasterio.Env():
        return fn(item)


def _enter_rasterio_env() -> None:
    """Give this worker thread a rasterio environment for its lifetime.

    Without one, every ``rasterio.open`` builds its own (and with AWS keys set, a boto3
    session): 3 s of CPU in the statistics of a 16-scene mosaic.
    """
    rasterio.Env().__enter__()


def _imap_dask(fn: Callable[[T], R], items: Iterable[T], workers: DaskWorkers) -> Iterator[R]:
    client = workers.client
    fn_data = client.scatter(fn, broadcast=True, hash=False)
    env = forwarded_environment()
    pending: deque[Any] = deque()
    limit = 2 * workers.threads
    try:
        for item in items:
            pending.append(client.submit(_call_with_environment, fn_data, item, env, pure=False))
            if len(pending) >= limit:
                future = pending.popleft()
                yield future.result()
                future.release()
        while pending:
            future = pending.popleft()
            yield future.result()
            future.release()
    finally:
        client.cancel(list(pending))
        client.cancel([fn_data])


def _imap_threads(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    if workers <= 1:
        # one BLAS thread, as below: a second one spins against the other work of the machine. Set
        # once for the run, not per task: each setting looks up the loaded libraries again (3.5 ms,
        # 0.9 s of the 256 small scenes' pass 2). The GDAL environment is not held across the
        # yield: it belongs to this thread, and a caller may drop the generator in another one.
        blas = threadpool_limits(limits=1, user_api="blas")
        try:
            for item in items:
                with rasterio.Env():
                    result = fn(item)
                yield result
        finally:
            blas.restore_original_limits()
        return
    it = iter(items)
    pool = ThreadPoolExecutor(max_workers=workers, initializer=_enter_rasterio_env)
    pending: deque[Future[R]] = deque()
    # one BLAS thread per task thread: OpenBLAS threads of concurrent tasks spin against each
    # other (a chunk's field evaluation ran 6x slower on 2 cores); Dask workers do the same
    blas = threadpool_limits(limits=1, user_api="blas")
    try:
        for item in it:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                break
        while pending:
            result = pending.popleft().result()
            for item in it:
                pending.append(pool.submit(fn, item))
                break
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        blas.restore_original_limits()


def imap_bounded(fn: Callable[[T], R], items: Iterable[T], workers: Workers = 1) -> Iterator[R]:
    """Yield ``fn(item)`` for every item, in order, with bounded concurrency.

    Parameters
    ----------
    fn
        The task. On a Dask cluster it (and what it closes over) must pickle.
    items
        Task inputs.
    workers
        Number of threads (1 runs everything in the calling thread), or a Dask cluster.

    Yields
    ------
    R
        Task results in the order of ``items``. The first exception raised by a task
        propagates; tasks not yet started are cancelled.
    """
    if isinstance(workers, DaskWorkers):
        return _imap_dask(fn, items, workers)
    return _imap_threads(fn, items, workers)


WARM_MODULES = ("stacrrn.pipeline.run", "stacrrn.pipeline.mosaic.mosaic")
"""Modules every Dask worker imports when :func:`connect` connects (with NumPy, SciPy, rasterio
and GDAL under them): about 0.6 s per worker that the first pixel task paid otherwise."""


def _warm_worker() -> list[str]:
    """Import :data:`WARM_MODULES` on a worker; the modules now loaded."""
    return [importlib.import_module(name).__name__ for name in WARM_MODULES]


@contextmanager
def connect(scheduler: str | None, workers: int) -> Iterator[Workers]:
    """Where a run's pixel tasks go: local threads, a new LocalCluster, or an existing cluster.

    Parameters
    ----------
    scheduler
        ``None`` or ``"threads"``: ``workers`` threads in this process (unless the
        ``DASK_SCHEDULER_ADDRESS`` environment variable names a scheduler); ``"local"``: a new
        ``dask.distributed`` LocalCluster of ``workers`` single-threaded worker processes,
        closed on exit; anything else: the address of a running scheduler
        (``tcp://host:8786``). The workers import what the pixel tasks need
        (:data:`WARM_MODULES`) before this returns.
    workers
        Threads, or worker processes of a LocalCluster.

    Yields
    ------
    Workers
        The ``workers`` count, or a :class:`DaskWorkers`.

    Raises
    ------
    ParameterError
        For fewer than one worker or a scheduler that cannot be reached.
    """
    check_workers(workers)
    scheduler = scheduler or os.environ.get(SCHEDULER_ENV) or "threads"
    if scheduler == "threads":
        yield workers
        return
    from distributed import Client, LocalCluster

    if scheduler == "local":
        import dask

        with (
            dask.config.set({"distributed.nanny.pre-spawn-environ": WORKER_ENVIRON}),
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            client.run(_warm_worker)
            yield DaskWorkers(client)
        return
    try:
        client = Client(scheduler, timeout="5s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ParameterError(
            f"cannot reach the Dask scheduler {scheduler!r} ({exc}); check --scheduler or {SCHEDULER_ENV}"
        ) from None
    with client:
        client.run(_warm_worker)
        yield DaskWorkers(client)
