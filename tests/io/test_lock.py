"""One run at a time per output location, locally and on the loopback S3; dead runs' locks are taken over."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time

import pytest

from stacrrn.errors import RunLockedError
from stacrrn.io.lock import LOCK_KEY, OutputLock
from stacrrn.io.storage import Storage


@pytest.fixture(params=["local", "s3"])
def location(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "out")
    bucket = request.getfixturevalue("bucket")
    return f"s3://{bucket}/out"


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


def test_a_second_run_is_refused_until_the_first_releases(location):
    first = OutputLock(Storage(location))
    with first:
        with pytest.raises(RunLockedError, match=f"being written by run {first.storage.run_id}") as info:
            OutputLock(Storage(location)).acquire()
        assert info.value.exit_code == 75
    assert not Storage(location).exists(LOCK_KEY)
    with OutputLock(Storage(location)):
        assert Storage(location).exists(LOCK_KEY)


@pytest.mark.parametrize(
    "stale",
    [
        {"host": "elsewhere", "expires": "2000-01-01T00:00:00+00:00"},  # lease ran out
        {"host": "HOST", "pid": "DEAD"},  # killed on this machine
        {"expires": "garbage"},
    ],
)
def test_a_stale_lock_is_taken_over(location, stale):
    import socket

    fields = {k: socket.gethostname() if v == "HOST" else dead_pid() if v == "DEAD" else v for k, v in stale.items()}
    storage = Storage(location)
    assert storage.create_text(LOCK_KEY, holder(**fields))
    with OutputLock(storage) as lock:
        assert json.loads(storage.read_text(LOCK_KEY))["token"] == lock.token


def test_a_live_lock_elsewhere_is_respected(location):
    storage = Storage(location)
    storage.create_text(LOCK_KEY, holder())
    with pytest.raises(RunLockedError, match=r"otherrun .*pid 1 on elsewhere"):
        OutputLock(Storage(location)).acquire()
    assert json.loads(storage.read_text(LOCK_KEY))["token"] == "other"


def test_of_two_takers_of_a_stale_lock_only_one_wins(location):
    storage = Storage(location)
    storage.create_text(LOCK_KEY, holder(expires="2000-01-01T00:00:00+00:00"))
    found = storage.tagged_text(LOCK_KEY)
    assert storage.replace_text_if(LOCK_KEY, holder(token="a"), found[1])
    assert not storage.replace_text_if(LOCK_KEY, holder(token="b"), found[1])
    assert json.loads(storage.read_text(LOCK_KEY))["token"] == "a"


def test_the_lease_is_renewed_while_the_run_works(location, monkeypatch):
    monkeypatch.setenv("STACRRN_LOCK_LEASE", "1.5")
    storage = Storage(location)
    with OutputLock(storage):
        first = json.loads(storage.read_text(LOCK_KEY))["expires"]
        time.sleep(1.3)
        assert json.loads(storage.read_text(LOCK_KEY))["expires"] > first
