"""Shared plumbing of the loopback services: ports, executables, HTTP polling, processes.

Every service binds to ``127.0.0.1`` only. HTTP requests made here bypass any proxy that
the environment configures, so a ``HTTP_PROXY`` variable cannot route loopback traffic
away from the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from stacrrn.errors import ServiceError

LOOPBACK = "127.0.0.1"
"""The only address the services bind to."""

_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class LoopbackService:
    """Base of the loopback services: ``with`` starts the service and stops it on exit."""

    def start(self) -> None:
        """Start the service (implemented by each service)."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the service (implemented by each service)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def running_port(port: int | None, service: str) -> int:
    """``port`` of a started service.

    Raises
    ------
    ServiceError
        If the service is not running (``port`` is ``None``).
    """
    if port is None:
        raise ServiceError(f"{service} is not running; call start() or use it as a context manager")
    return port


def free_port() -> int:
    """Return a TCP port on ``127.0.0.1`` that was free a moment ago.

    Returns
    -------
    int
        A port number chosen by the kernel. Another process may take it before the
        caller binds it, so services that start subprocesses retry with a new port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def find_executable(name: str, extra_dirs: Sequence[Path] = ()) -> str | None:
    """Find an executable in ``extra_dirs``, next to ``sys.executable``, then on ``PATH``.

    Looking beside the running interpreter first finds the console scripts of the active
    virtual environment even when its ``bin`` directory is not on ``PATH``.

    Parameters
    ----------
    name : str
        The executable's file name, e.g. ``"rustac"``.
    extra_dirs : sequence of Path, optional
        Directories searched before the interpreter's directory.

    Returns
    -------
    str or None
        The absolute path, or ``None`` when it is nowhere to be found.
    """
    for directory in [*extra_dirs, Path(sys.executable).parent]:
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def require_executable(name: str, hint: str, extra_dirs: Sequence[Path] = ()) -> str:
    """Like :func:`find_executable` but raise :class:`ServiceError` when it is missing.

    Parameters
    ----------
    name : str
        The executable's file name.
    hint : str
        What to install to get it; appended to the error message.
    extra_dirs : sequence of Path, optional
        Directories searched first.

    Returns
    -------
    str
        The absolute path of the executable.

    Raises
    ------
    ServiceError
        If the executable cannot be found.
    """
    path = find_executable(name, extra_dirs)
    if path is None:
        raise ServiceError(f"executable {name!r} not found next to {sys.executable} or on PATH; {hint}")
    return path


def log_tail(path: Path | None, lines: int = 30) -> str:
    """Return the last ``lines`` lines of a log file, or ``""`` if it cannot be read.

    Parameters
    ----------
    path : Path or None
        The log file.
    lines : int, optional
        How many lines to keep.

    Returns
    -------
    str
        The tail, prefixed with a header naming the file, or an empty string.
    """
    if path is None:
        return ""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    tail = "\n".join(text.splitlines()[-lines:])
    return f"\n--- last lines of {path} ---\n{tail}" if tail else ""


def wait_http(
    url: str,
    timeout: float = 30.0,
    *,
    log: Path | None = None,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll ``url`` until it answers with any HTTP response.

    Parameters
    ----------
    url : str
        The address to poll; any status code (even 404 or 500) counts as an answer.
    timeout : float, optional
        Seconds to wait before giving up.
    log : Path, optional
        The service's log file, whose tail is put into the error message.
    process : subprocess.Popen, optional
        The service process; if it exits the wait fails at once instead of timing out.

    Raises
    ------
    ServiceError
        If nothing answers within ``timeout`` seconds or ``process`` exits first.
    """
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        try:
            with _NO_PROXY_OPENER.open(url, timeout=2.0):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError):
            pass
        if process is not None and process.poll() is not None:
            raise ServiceError(
                f"the service process (pid {process.pid}) exited with code {process.returncode} "
                f"before {url} answered{log_tail(log)}"
            )
        if time.monotonic() > deadline:
            raise ServiceError(f"timed out after {timeout:g} s waiting for {url}{log_tail(log)}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def http_json(method: str, url: str, body: Any = None, timeout: float = 60.0) -> tuple[int, Any]:
    """Send a JSON request over loopback and decode the JSON answer.

    Parameters
    ----------
    method : str
        The HTTP method, e.g. ``"POST"``.
    url : str
        The full URL.
    body : object, optional
        A JSON-serialisable request body.
    timeout : float, optional
        Socket timeout in seconds.

    Returns
    -------
    tuple of (int, object)
        The status code and the decoded body (``None`` if it is empty or not JSON).
        Error statuses are returned, not raised.
    """
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    request.add_header("Accept", "application/json")
    try:
        with _NO_PROXY_OPENER.open(request, timeout=timeout) as response:
            status: int = response.status
            raw: bytes = response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """Terminate a child process, killing it if it does not exit within ``timeout``.

    Parameters
    ----------
    process : subprocess.Popen or None
        The process; ``None`` or an already finished process is a no-op.
    timeout : float, optional
        Seconds to wait after ``SIGTERM`` before ``SIGKILL``.
    """
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def run_checked(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    timeout: float = 120.0,
    what: str = "",
) -> None:
    """Run a command to completion, appending its output to ``log``.

    Parameters
    ----------
    args : sequence of str
        The command line.
    env : mapping, optional
        The complete environment of the child (the parent's when ``None``).
    log : Path, optional
        File the command's stdout and stderr are appended to (discarded when ``None``).
    timeout : float, optional
        Seconds before the command is killed.
    what : str, optional
        A short description for the error message; defaults to the command line.

    Raises
    ------
    ServiceError
        If the command fails, times out or cannot be executed.
    """
    label = what or " ".join(args)
    child_env = None if env is None else dict(env)
    try:
        with log.open("ab") if log is not None else open(os.devnull, "wb") as sink:
            if log is not None:
                sink.write(f"$ {' '.join(args)}\n".encode())
                sink.flush()
            result = subprocess.run(
                list(args), env=child_env, stdout=sink, stderr=subprocess.STDOUT, timeout=timeout, check=False
            )
    except subprocess.TimeoutExpired as error:
        raise ServiceError(f"{label} timed out after {timeout:.0f} s{log_tail(log)}") from error
    except OSError as error:
        raise ServiceError(f"{label} could not be executed: {error}") from error
    if result.returncode != 0:
        raise ServiceError(f"{label} failed with exit code {result.returncode}{log_tail(log)}")
