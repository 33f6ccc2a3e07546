"""A read-only STAC API on loopback: ``rustac serve`` with its in-memory backend.

It supports item search by ``bbox``, ``datetime``, ``ids``, ``collections`` and paging,
but neither the query nor the filter extension nor transactions (a ``query=`` search
silently returns nothing); use :class:`stacrrn.services.PgstacAPI` for those.
"""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stacrrn.errors import ServiceError
from stacrrn.services.common import (
    LOOPBACK,
    LoopbackService,
    free_port,
    log_tail,
    require_executable,
    running_port,
    stop_process,
    wait_http,
)

_ATTEMPTS = 3


class RustacAPI(LoopbackService):
    """A ``rustac serve`` process serving collections and items on ``127.0.0.1``.

    Parameters
    ----------
    collections : dict or list of dict
        One STAC collection or several, as JSON-like dicts.
    items : list of dict, optional
        STAC items (dicts); each item's ``collection`` must name one of ``collections``.
    workdir : Path, optional
        Directory for the JSON files and ``rustac.log``. It is kept on :meth:`stop`;
        without it a temporary directory is created and removed on :meth:`stop`.

    Examples
    --------
    >>> with RustacAPI(collection, items) as api:     # doctest: +SKIP
    ...     pystac_client.Client.open(api.url).search(bbox=[...]).item_collection()
    """

    def __init__(
        self,
        collections: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        items: Sequence[Mapping[str, Any]] = (),
        workdir: Path | None = None,
    ) -> None:
        self._collections = [collections] if isinstance(collections, Mapping) else list(collections)
        if not self._collections:
            raise ServiceError("RustacAPI needs at least one collection")
        self._items = list(items)
        self._workdir = None if workdir is None else Path(workdir)
        self._owns_workdir = False
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        """The API root, ``http://127.0.0.1:PORT``.

        Raises
        ------
        ServiceError
            If the server is not running.
        """
        return f"http://{LOOPBACK}:{running_port(self._port, 'RustacAPI')}"

    @property
    def log_path(self) -> Path | None:
        """The server's log file, once started."""
        return None if self._dir is None else self._dir / "rustac.log"

    def _write_inputs(self, directory: Path) -> list[str]:
        hrefs = []
        for index, collection in enumerate(self._collections):
            name = "collection.json" if len(self._collections) == 1 else f"collection-{index}.json"
            path = directory / name
            # rustac would follow item/child links; the items are given explicitly instead
            links = [ln for ln in collection.get("links", []) if ln.get("rel") not in ("item", "child")]
            path.write_text(json.dumps({**collection, "links": links}))
            hrefs.append(str(path))
        if self._items:
            path = directory / "items.json"
            features = [
                {**it, "links": [ln for ln in it.get("links", []) if ln.get("rel") == "self"]} for it in self._items
            ]
            path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
            hrefs.append(str(path))
        return hrefs

    def start(self, timeout: float = 30.0) -> None:
        """Write the inputs, start ``rustac serve`` and wait until it answers.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait for the server to answer.

        Raises
        ------
        ServiceError
            If ``rustac`` is missing, exits early or does not answer in time.
        """
        if self._process is not None:
            return
        executable = require_executable("rustac", "pip install rustac")
        if self._workdir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="stacrrn-rustac-"))
            self._owns_workdir = True
        else:
            self._dir = self._workdir
            self._dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)
        try:
            hrefs = self._write_inputs(self._dir)
            log = self._dir / "rustac.log"
            for attempt in range(_ATTEMPTS):
                self._port = free_port()
                with log.open("ab") as sink:
                    self._process = subprocess.Popen(
                        [executable, "serve", "--addr", f"{LOOPBACK}:{self._port}", *hrefs],
                        stdin=subprocess.DEVNULL,
                        stdout=sink,
                        stderr=subprocess.STDOUT,
                        cwd=self._dir,
                    )
                try:
                    wait_http(f"{self.url}/", timeout=timeout, log=log, process=self._process)
                    return
                except ServiceError:
                    stop_process(self._process)
                    self._process = None
                    # Another process took the port between free_port() and the bind.
                    if "in use" not in log_tail(log, 3) or attempt == _ATTEMPTS - 1:
                        raise
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and remove a temporary workdir.

        Idempotent.
        """
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        stop_process(process)
        self._port = None
        if self._owns_workdir and self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            self._owns_workdir = False
