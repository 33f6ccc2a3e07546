"""Running independent tasks on a bounded pool of threads.

GDAL and NumPy release the GIL during reads and array arithmetic, so threads scale for
the pixel passes. At most ``2 * workers`` tasks are in flight, which bounds memory to a
few chunks whatever the number of tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def imap_bounded(fn: Callable[[T], R], items: Iterable[T], workers: int = 1) -> Iterator[R]:
    """Yield ``fn(item)`` for every item, in completion order, with bounded concurrency.

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
        Task results as they finish. The first exception raised by a task propagates
        after the tasks already running have finished.
    """
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    it = iter(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: set[Future[R]] = set()
        for item in it:
            pending.add(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                result = fut.result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.add(pool.submit(fn, nxt))
                yield result
