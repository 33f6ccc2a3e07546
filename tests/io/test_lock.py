"""One run at a time per output location, locally and on the loopback S3; dead runs' locks are taken over.

No test waits for time to pass: leases run out by an injected clock, by an expiry written in the
lock, or by a file modification time set in the past; races start together at a barrier.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from stacrrn.errors import RunLockedError
from stacrrn.io.lock import LEASE_ENV, LOCK_KEY, OutputLock, lease_seconds
from stacrrn.io.storage import Storage

PAST = "2000-01-01T00:00:00+00:00"
PARTIAL = '{"token": "other", "run_id": "otherrun", "host": "elsewhere", "pid": 1, "exp'


@pytest.fixture(params=["local", "s3"])
def location(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "out")
    bucket = request.getfixturevalue("bucket")
    return f"s3://{bucket}/out"


@pytest.fixture(autouse=True)
def default_lease(monkeypatch):
    monkeypatch.delenv(LEASE_ENV, raising=False)


def holder(**fields: object) -> str:
    now = dt.datetime.now(dt.UTC)
    body = {
        "token": "other",
        "run_id": "otherrun",
        "host": "elsewhere",
        "pid": 1,
        "expires": (now + dt.timedelta(minutes=10)).isoformat(),
    }
    return json.dumps(body | fields)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def token(storage: Storage) -> str:
    return json.loads(storage.read_text(LOCK_KEY))["token"]


def test_a_second_run_is_refused_until_the_first_releases(location):
    first = OutputLock(Storage(location))
    with first:
        with pytest.raises(RunLockedError, match=f"being written by run {first.storage.run_id}") as info:
            OutputLock(Storage(location)).acquire()
        assert info.value.exit_code == 75
    assert not Storage(location).exists(LOCK_KEY)
    with OutputLock(Storage(location)):
        assert Storage(location).exists(LOCK_KEY)


def test_a_local_lock_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "out"
    with OutputLock(Storage(str(out))) as lock:
        assert os.listdir(out) == [LOCK_KEY]
        assert lock.renew()
        assert os.listdir(out) == [LOCK_KEY]
        with pytest.raises(RunLockedError):
            OutputLock(Storage(str(out))).acquire()
        assert os.listdir(out) == [LOCK_KEY]
    assert os.listdir(out) == []


def test_a_local_lock_appears_with_its_whole_content(tmp_path, monkeypatch):
    seen = []
    real_link = os.link

    def link(src, dst, *args, **kwargs):
        seen.append(Path(src).read_text())
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "link", link)
    storage = Storage(str(tmp_path / "out"))
    with OutputLock(storage) as lock:
        assert [json.loads(text)["token"] for text in seen] == [lock.token]
        assert token(storage) == lock.token


@pytest.mark.parametrize(
    "stale",
    [
        {"host": "elsewhere", "expires": PAST},  # lease ran out
        {"host": "HOST", "pid": "DEAD"},  # killed on this machine
    ],
)
def test_a_stale_lock_is_taken_over(location, stale):
    fields = {k: socket.gethostname() if v == "HOST" else dead_pid() if v == "DEAD" else v for k, v in stale.items()}
    storage = Storage(location)
    assert storage.create_text(LOCK_KEY, holder(**fields))
    with OutputLock(storage) as lock:
        assert token(storage) == lock.token


def test_a_live_lock_elsewhere_is_respected(location):
    storage = Storage(location)
    storage.create_text(LOCK_KEY, holder())
    with pytest.raises(RunLockedError, match=r"otherrun .*pid 1 on elsewhere"):
        OutputLock(Storage(location)).acquire()
    assert token(storage) == "other"


@pytest.mark.parametrize("content", ["", PARTIAL, "garbage", '["a list"]', holder(expires="garbage")])
def test_an_incomplete_lock_is_left_alone_until_older_than_a_lease(location, content):
    storage = Storage(location)
    assert storage.create_text(LOCK_KEY, content)
    clock = Clock()
    with pytest.raises(RunLockedError, match="still being written"):
        OutputLock(Storage(location), clock=clock).acquire()
    assert storage.read_text(LOCK_KEY) == content
    clock.advance(lease_seconds() - 60)
    with pytest.raises(RunLockedError, match="still being written"):
        OutputLock(Storage(location), clock=clock).acquire()
    clock.advance(120)  # now older than a lease: its writer died
    with OutputLock(Storage(location), clock=clock) as lock:
        assert token(storage) == lock.token


def test_a_taker_that_judged_an_older_version_does_not_replace_the_newer_one(location):
    storage = Storage(location)
    storage.create_text(LOCK_KEY, holder(expires=PAST))
    late = OutputLock(Storage(location))
    judged = late._file.look()
    with OutputLock(Storage(location)) as first:  # takes the stale lock over after `late` looked at it
        late._file.look = lambda: judged  # `late` sees only the stale version it judged
        with pytest.raises(RunLockedError):
            late.acquire()
        assert token(storage) == first.token
    assert not storage.exists(LOCK_KEY)


def test_the_lease_is_renewed_from_the_current_time(location):
    storage = Storage(location)
    clock = Clock()
    with OutputLock(storage, clock=clock) as lock:
        first = dt.datetime.fromisoformat(json.loads(storage.read_text(LOCK_KEY))["expires"])
        clock.advance(100)
        assert lock.renew()
        renewed = dt.datetime.fromisoformat(json.loads(storage.read_text(LOCK_KEY))["expires"])
        assert renewed - first == dt.timedelta(seconds=100)


def test_a_run_whose_lease_ran_out_loses_its_lock_and_leaves_the_new_one(location):
    storage = Storage(location)
    clock = Clock()
    with OutputLock(Storage(location), clock=clock) as stalled:
        clock.advance(lease_seconds() + 1)  # `stalled` did not renew in time (a suspended machine)
        with OutputLock(Storage(location), clock=clock) as successor:
            assert token(storage) == successor.token
            assert not stalled.renew()
            stalled.release()
            assert token(storage) == successor.token
    assert not storage.exists(LOCK_KEY)


def test_the_lease_is_renewed_in_the_background(location, monkeypatch):
    monkeypatch.setenv(LEASE_ENV, "1")  # a beat every third of a second
    storage = Storage(location)
    clock = Clock()
    lock = OutputLock(storage, clock=clock)
    advanced, renewed = threading.Event(), threading.Event()
    real_renew = lock.renew

    def renew() -> bool:
        after = advanced.is_set()  # this renewal reads the advanced clock
        done = real_renew()
        if after:
            renewed.set()
        return done

    lock.renew = renew
    with lock:
        first = dt.datetime.fromisoformat(json.loads(storage.read_text(LOCK_KEY))["expires"])
        clock.advance(100)
        advanced.set()
        assert renewed.wait(timeout=60), "the lock was not renewed"
        again = dt.datetime.fromisoformat(json.loads(storage.read_text(LOCK_KEY))["expires"])
        assert again - first == dt.timedelta(seconds=100)


# --- processes racing for one local lock ------------------------------------------------------

RACERS = 4


def contend(location: str, index: int, rounds: int, barrier, results, errors) -> None:
    """In each round: start with the others, try to take the lock, hold it until all have tried."""
    for r in range(rounds):
        barrier.wait()
        lock = OutputLock(Storage(location))
        got = 0
        try:
            lock.acquire()
            got = 1
        except RunLockedError:
            pass
        except Exception as exc:
            errors.put(f"round {r}, process {index}: {exc!r}")
            got = -1
        results[r * RACERS + index] = got
        barrier.wait()  # all have tried
        barrier.wait()  # the lock has been looked at, held (its process alive) all along
        if got == 1:
            lock.release()
        barrier.wait()  # the holder has released


def race(out: Path, rounds: int, prepare: Callable[[], None]) -> list[tuple[list[int], int | None]]:
    """Per round, whether each of :data:`RACERS` processes got the lock, and which one the lock names."""
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(RACERS + 1, timeout=60)
    results = ctx.Array("i", [-2] * rounds * RACERS)
    errors = ctx.SimpleQueue()
    procs = [
        ctx.Process(target=contend, args=(str(out), i, rounds, barrier, results, errors), daemon=True)
        for i in range(RACERS)
    ]
    for proc in procs:
        proc.start()
    pids = [proc.pid for proc in procs]
    named: list[int | None] = []
    try:
        for _ in range(rounds):
            prepare()
            barrier.wait()  # go
            barrier.wait()  # all have tried
            pid = None
            with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
                pid = json.loads((out / LOCK_KEY).read_text())["pid"]
            named.append(pids.index(pid) if pid in pids else None)
            barrier.wait()  # looked at
            barrier.wait()  # released
    except BaseException:
        barrier.abort()
        raise
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert not problems, problems
    got = list(results)
    return [(got[r * RACERS : (r + 1) * RACERS], named[r]) for r in range(rounds)]


def write_lock(path: Path, text: str, age: float = 0.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if age:
        then = dt.datetime.now(dt.UTC).timestamp() - age
        os.utime(path, (then, then))


@pytest.mark.parametrize(
    ("before", "rounds"),
    [("no lock", 400), ("lease ran out", 100), ("process gone", 100), ("incomplete and older than a lease", 100)],
)
def test_of_processes_racing_for_a_lock_exactly_one_gets_it(tmp_path, before, rounds):
    out = tmp_path / "out"
    scenarios = {
        "no lock": lambda: (None, 0.0),
        "lease ran out": lambda: (holder(expires=PAST), 0.0),
        "process gone": lambda: (holder(host=socket.gethostname(), pid=dead_pid()), 0.0),
        "incomplete and older than a lease": lambda: (PARTIAL, 2 * lease_seconds()),  # its writer died
    }
    text, age = scenarios[before]()

    def prepare() -> None:
        if text is not None:
            write_lock(out / LOCK_KEY, text, age)

    for got, named in race(out, rounds, prepare):
        assert named is not None and got == [int(i == named) for i in range(RACERS)]
    assert os.listdir(out) == []  # released, and no temporary file left


@pytest.mark.parametrize(
    "text",
    [pytest.param(holder(), id="live elsewhere"), pytest.param(PARTIAL, id="incomplete"), pytest.param("", id="empty")],
)
def test_of_processes_racing_for_a_held_lock_none_gets_it(tmp_path, text):
    out = tmp_path / "out"
    write_lock(out / LOCK_KEY, text)
    for got, _ in race(out, 10, lambda: None):
        assert got == [0] * RACERS
    assert (out / LOCK_KEY).read_text() == text
    assert os.listdir(out) == [LOCK_KEY]
