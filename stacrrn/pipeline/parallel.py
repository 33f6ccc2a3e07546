"""Running independent tasks on a bounded pool of threads.

GDAL and NumPy release the GIL during reads and array arithmetic, so threads scale for
the pixel passes. At most ``2 * workers`` tasks are in flight, which bounds memory to a
few chunks whatever the number of tasks. Results come back in submission order, so
reductions over them are deterministic whatever the number of workers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def imap_bounded(fn: Callable[[T], R], items: Iterable[T], workers: int = 1) -> Iterator[R]:
    """Yield ``fn(item)`` for every item, in order, with bounded concurrency.

    Parameters
    ----------
    fn
        The task.
    items
        Task inputs.
    workers
        Number of threads; 1 runs everything in the calling thread.

    Yields
    ------
    R
        Task results in the order of ``items``. The first exception raised by a task
        propagates; tasks not yet started are cancelled.
    """
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    it = iter(items)
    pool = ThreadPoolExecutor(max_workers=workers)
    pending: deque[Future[R]] = deque()
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
