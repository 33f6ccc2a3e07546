"""Retries: what counts as transient, backoff, and the error after the last try."""

from __future__ import annotations

import pytest
from rasterio.errors import RasterioIOError

from stacrrn.errors import TransientIOError
from stacrrn.io.retry import backoff, is_transient, retrying


@pytest.mark.parametrize(
    "exc",
    [
        TimeoutError("read timed out"),
        ConnectionResetError(104, "Connection reset by peer"),
        RasterioIOError("CURL error: HTTP response code: 503"),
        OSError("An error occurred (SlowDown) when calling the GetObject operation: Please reduce your request rate"),
        OSError("Connection was closed before we received a valid response from endpoint URL"),
        RasterioIOError("IReadBlock failed ... transfer closed with 1234 bytes remaining to read"),
    ],
)
def test_transient_faults(exc):
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        FileNotFoundError("s3://b/k"),
        PermissionError("denied"),
        RasterioIOError("HTTP response code: 404"),
        RasterioIOError("'x.tif' not recognized as being in a supported file format"),
        OSError("An error occurred (AccessDenied): Access Denied"),
        ValueError("bad data"),
    ],
)
def test_permanent_faults(exc):
    assert not is_transient(exc)


def test_retrying_repeats_transient_faults_until_success(monkeypatch):
    monkeypatch.setattr("stacrrn.io.retry.time.sleep", lambda s: None)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise ConnectionResetError("connection reset")
        return "done"

    assert retrying("read x", flaky) == "done" and len(calls) == 4


def test_retrying_gives_up_with_a_temporary_error_and_leaves_permanent_ones_alone(monkeypatch):
    monkeypatch.setattr("stacrrn.io.retry.time.sleep", lambda s: None)
    monkeypatch.setenv("STACRRN_RETRY_ATTEMPTS", "3")
    calls = []

    def down():
        calls.append(1)
        raise TimeoutError("timed out")

    with pytest.raises(TransientIOError, match=r"read y failed 3 times .*run the same command again") as info:
        retrying("read y", down)
    assert len(calls) == 3 and info.value.exit_code == 75
    with pytest.raises(FileNotFoundError):
        retrying("read z", lambda: (_ for _ in ()).throw(FileNotFoundError("z")))


def test_backoff_grows_and_is_capped():
    assert all(0 <= backoff(1) <= 0.2 for _ in range(50))
    assert all(0 <= backoff(20) <= 5.0 for _ in range(50))
    assert max(backoff(4) for _ in range(200)) > 0.8
