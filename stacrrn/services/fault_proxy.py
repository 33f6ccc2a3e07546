"""A fault-injecting HTTP reverse proxy on loopback, to prove that S3 clients survive transient faults.

:class:`FaultProxy` sits between the clients (boto3, s3fs, GDAL's ``/vsis3/``) and an S3
endpoint such as :class:`~stacrrn.services.s3.LoopbackS3`. It forwards every request
unchanged (``Host`` included) and, per request, fails a seeded random fraction of them:

- ``"status"``: answer ``503 SlowDown`` with an S3 error body; the connection stays usable.
- ``"reset"``: read the request, then drop the connection with a TCP reset, forwarding nothing.
- ``"truncate"``: forward a ``GET``, send the answer's headers with the full ``Content-Length``
  but only half of its body, then close the connection (a ``GET`` answered without a body
  is applied but its answer lost). Drawn for another method it acts as ``"reset"`` (and is
  counted so), so a request that is not idempotent is never applied with its answer lost.

Draws come from ``random.Random(seed)``, three per request whatever the outcome, so the
same seed and the same request order give the same faults.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import random
import socket
import socketserver
import struct
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from stacrrn.errors import ParameterError
from stacrrn.services.common import LOOPBACK, LoopbackService, running_port
from stacrrn.services.s3 import LoopbackS3

FAULT_MODES = ("status", "reset", "truncate")
"""The fault modes :class:`FaultProxy` knows."""

SLOW_DOWN_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
)
"""The body of a ``"status"`` fault: S3's answer when it throttles."""

# Headers that describe one connection, not the message (RFC 9110 7.6.1). ``Expect`` joins
# them: the proxy has already answered ``100-continue`` itself and sends the body at once.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization"}
    | {"te", "trailer", "trailers", "transfer-encoding", "upgrade", "expect"}
)
_BLOCK = 1 << 16
_MAX_LINE = 1 << 16
_UPSTREAM_TIMEOUT = 60.0
_log = logging.getLogger(__name__)


class _EnvAt(LoopbackS3):
    """A never started :class:`LoopbackS3` whose :meth:`env` points at another loopback port."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self._fixed_port = port

    @property
    def port(self) -> int:
        """The port the variables point at."""
        return self._fixed_port


def _hop_by_hop(headers: Any) -> set[str]:
    """Lower-case names not to forward: the standard ones and those listed in ``Connection``."""
    listed = {token.strip().lower() for value in headers.get_all("Connection", []) for token in value.split(",")}
    return set(_HOP_BY_HOP) | listed


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__((LOOPBACK, 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a DNS lookup nothing here needs.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = LOOPBACK, int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that drops its connection is routine here, not worth a traceback on stderr.
        _log.debug("error while serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body, written apart, wait for a delayed ACK
    timeout = 120.0  # an idle keep-alive connection is dropped after this many seconds
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.proxy._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.proxy._track(self.connection, add=False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = do_GET  # noqa: N815

    def _handle(self) -> None:
        proxy = self.server.proxy
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.send_error(400, "malformed request body")
            return
        fault, delay = proxy._decide(self.command)
        if delay:
            time.sleep(proxy.delay_s)
        try:
            if fault == "status":
                self._slow_down()
            elif fault == "reset":
                self._reset()
            else:
                self._forward(body, truncate=fault == "truncate")
        except OSError:  # the client went away while we answered
            self.close_connection = True

    def _read_body(self) -> bytes | None:
        """The request body, de-chunked; ``None`` when the request has none."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline(_MAX_LINE).split(b";")[0].strip(), 16)
                if size == 0:
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(_MAX_LINE)
            while self.rfile.readline(_MAX_LINE).strip():  # trailers, up to the empty line
                pass
            return b"".join(parts)
        length = self.headers.get("Content-Length")
        if length is None:
            return None
        data = self.rfile.read(int(length))
        if len(data) != int(length):
            raise ValueError("the request body is shorter than its Content-Length")
        return data

    def _slow_down(self) -> None:
        self.send_response(503, "Slow Down")
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(SLOW_DOWN_BODY)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(SLOW_DOWN_BODY)

    def _reset(self) -> None:
        """Close the connection with a TCP reset (``SO_LINGER`` 0) and no answer."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # the socket's file descriptor closes with its last file object
        self.connection.close()

    def _forward(self, body: bytes | None, *, truncate: bool) -> None:
        proxy = self.server.proxy
        upstream = http.client.HTTPConnection(proxy._host, proxy._port_upstream, timeout=_UPSTREAM_TIMEOUT)
        try:
            skip = _hop_by_hop(self.headers) | {"content-length"}
            upstream.putrequest(self.command, self.path, skip_host="Host" in self.headers, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in skip:
                    upstream.putheader(name, value)
            if body is not None:
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            response = upstream.getresponse()
        except (OSError, http.client.HTTPException) as error:
            upstream.close()
            self.close_connection = True
            self.send_error(502, f"upstream {proxy.upstream} failed: {error}")
            return
        try:
            self._relay(response, truncate=truncate)
        finally:
            upstream.close()

    def _relay(self, response: http.client.HTTPResponse, *, truncate: bool) -> None:
        """Send the upstream's answer; with ``truncate`` only half of its body, then close."""
        no_body = self.command == "HEAD" or response.status in (204, 304)
        headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _hop_by_hop(response.msg)]
        data, length = b"", response.length or 0
        if not no_body and response.length is None:  # chunked or delimited by close: give it a length
            data = response.read()
            length = len(data)
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [("Content-Length", str(length))]
        if truncate and (no_body or not length):  # nothing to cut: the answer is lost whole
            self.close_connection = True
            return
        self.send_response_only(response.status, response.reason)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        sent, end = 0, length // 2 if truncate else length
        if data:
            self.wfile.write(data[:end])
            sent = end
        while sent < end:
            block = response.read(min(_BLOCK, end - sent))
            if not block:  # the upstream cut the transfer: so do we
                break
            self.wfile.write(block)
            sent += len(block)
        if truncate or sent < end:
            self.close_connection = True


class FaultProxy(LoopbackService):
    """A reverse proxy on ``127.0.0.1`` that fails a seeded random fraction of the requests.

    Parameters
    ----------
    upstream : str
        The endpoint to forward to, ``http://host:port``.
    failure_rate : float, optional
        Probability that a request fails instead of being forwarded normally.
    seed : int, optional
        Seed of the random draws; the same seed and request order give the same faults.
    delay_rate : float, optional
        Probability (independent of failures) that a request first waits ``delay_s``.
    delay_s : float, optional
        The delay in seconds.
    modes : sequence of str, optional
        The fault modes drawn from with equal probability, among :data:`FAULT_MODES`.

    Raises
    ------
    ParameterError
        If the upstream is not ``http://host:port``, a rate is outside [0, 1] or a mode unknown.

    Examples
    --------
    >>> with LoopbackS3() as s3, FaultProxy(s3.endpoint, failure_rate=0.0) as proxy:  # doctest: +SKIP
    ...     s3.create_bucket("demo")
    ...     proxy.failure_rate = 0.1
    ...     with rasterio.Env(**proxy.env()):
    ...         ...
    """

    def __init__(
        self,
        upstream: str,
        failure_rate: float = 0.1,
        seed: int = 0,
        delay_rate: float = 0.0,
        delay_s: float = 0.2,
        modes: Sequence[str] = ("status", "reset"),
    ) -> None:
        parts = urllib.parse.urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or parts.path.strip("/"):
            raise ParameterError(f"FaultProxy upstream {upstream!r}: expected http://host:port")
        unknown = [mode for mode in modes if mode not in FAULT_MODES]
        if unknown or not modes:
            raise ParameterError(f"FaultProxy modes {list(modes)!r}: choose among {FAULT_MODES}")
        self.upstream = upstream.rstrip("/")
        self._host = parts.hostname
        self._port_upstream = parts.port or 80
        self.modes = tuple(modes)
        """The fault modes drawn from; may be changed at any time."""
        self.delay_s = delay_s
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        for name, rate in (("failure_rate", failure_rate), ("delay_rate", delay_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ParameterError(f"FaultProxy {name} {rate!r}: expected a probability in [0, 1]")
        self.failure_rate = failure_rate
        """Probability that a request fails; may be changed at any time (see also :meth:`paused`)."""
        self.delay_rate = delay_rate
        """Probability that a request first waits ``delay_s``; may be changed at any time."""
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._requests = self._delayed = 0
        self._failed = dict.fromkeys(FAULT_MODES, 0)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Forward every request unharmed and undelayed inside the ``with`` block."""
        saved = self.failure_rate, self.delay_rate
        self.failure_rate = self.delay_rate = 0.0
        try:
            yield
        finally:
            self.failure_rate, self.delay_rate = saved

    @property
    def port(self) -> int:
        """The bound port (:class:`~stacrrn.errors.ServiceError` if not running)."""
        return running_port(None if self._server is None else self._server.server_port, "FaultProxy")

    @property
    def url(self) -> str:
        """The proxy's endpoint URL, ``http://127.0.0.1:PORT``."""
        return f"http://{LOOPBACK}:{self.port}"

    def env(self) -> dict[str, str]:
        """The variables of :meth:`LoopbackS3.env <stacrrn.services.s3.LoopbackS3.env>`, pointing at the proxy.

        Returns
        -------
        dict of str to str
            ``AWS_ENDPOINT_URL`` is :attr:`url`, ``AWS_S3_ENDPOINT`` is ``127.0.0.1:PORT``;
            the credentials, region and GDAL settings are the same as the S3 server's. Meant
            for ``os.environ`` or a child's environment: ``rasterio.Env`` refuses the keys.
        """
        return _EnvAt(self.port).env()

    def _decide(self, method: str) -> tuple[str | None, bool]:
        """Draw the fate of one request: the fault mode (``None`` to forward) and whether to delay."""
        with self._lock:
            fail, pick, wait = self._random.random(), self._random.random(), self._random.random()
            self._requests += 1
            fault = self.modes[int(pick * len(self.modes))] if fail < self.failure_rate else None
            if fault == "truncate" and method != "GET":
                fault = "reset"
            if fault is not None:
                self._failed[fault] += 1
            delay = wait < self.delay_rate
            self._delayed += delay
            return fault, delay

    def stats(self) -> dict[str, Any]:
        """The counters, taken together under the lock.

        Returns
        -------
        dict
            ``requests`` (received since :meth:`reset_counters`), ``failed`` (a dict of counts
            by fault mode), ``failed_total`` and ``delayed``.
        """
        with self._lock:
            failed = dict(self._failed)
            total = sum(failed.values())
            return {"requests": self._requests, "failed": failed, "failed_total": total, "delayed": self._delayed}

    def reset_counters(self) -> None:
        """Set the counters back to zero (the random sequence goes on)."""
        with self._lock:
            self._requests = self._delayed = 0
            self._failed = dict.fromkeys(FAULT_MODES, 0)

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def start(self) -> None:
        """Bind a kernel-chosen port on ``127.0.0.1`` and serve in a daemon thread (idempotent)."""
        if self._server is not None:
            return
        server = _Server(self)
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="FaultProxy", daemon=True
        )
        self._thread.start()
        self._server = server

    def stop(self) -> None:
        """Stop serving and close the listening socket and every open connection (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
