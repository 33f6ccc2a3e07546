"""A loopback HTTP server for tests: serves fixed answers by path and records every request."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any


class Web:
    """``http.server`` on 127.0.0.1 answering registered paths (query strings ignored); 404 for the rest.

    Use as a context manager; :attr:`requested` lists every path asked for, with its query string.
    """

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes]] = {}
        self.requested: list[str] = []
        web = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                web.requested.append(self.path)
                status, body = web.routes.get(self.path.split("?", 1)[0], (404, b"not found"))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_HEAD(self) -> None:
                web.requested.append(self.path)
                status, body = web.routes.get(self.path.split("?", 1)[0], (404, b""))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()

            def do_POST(self) -> None:
                self.do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def serve(self, path: str, body: bytes | str | Any, status: int = 200) -> str:
        """Answer ``path`` with ``body`` (bytes, text, or anything else as JSON); return its URL."""
        if isinstance(body, str):
            data = body.encode()
        elif isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body).encode()
        self.routes[path] = (status, data)
        return self.url + path

    def __enter__(self) -> Web:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
