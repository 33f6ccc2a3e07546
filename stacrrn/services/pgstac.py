"""A full STAC API on loopback: PostgreSQL + pgstac + stac-fastapi-pgstac.

:class:`PgstacAPI` creates a throw-away PostgreSQL cluster (``initdb``, trust auth,
``fsync=off``) listening on ``127.0.0.1`` and a socket in its work directory, installs
pgstac with ``pypgstac migrate``, and runs ``uvicorn stac_fastapi.pgstac.app:create_app``
with the transactions extensions on. Unlike ``rustac serve`` it supports the query,
filter (CQL2), sort and fields extensions and transactions.

Requirements: Debian/Ubuntu ``postgresql-NN`` and ``postgresql-NN-postgis-3`` (the
server binaries under ``/usr/lib/postgresql/NN/bin``), and the Python packages
``stac-fastapi-pgstac[server]`` and ``pypgstac[psycopg]``. Those are looked up in the
running interpreter's environment, or in the virtual environment named by the
``STACRRN_PGSTAC_VENV`` variable if it is set. As root the cluster runs as the
``postgres`` user (via ``runuser``), because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import atexit
import glob
import importlib.util
import os
import pwd
import re
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
    find_executable,
    free_port,
    http_json,
    log_tail,
    require_executable,
    run_checked,
    running_port,
    stop_process,
    wait_http,
)

VENV_VARIABLE = "STACRRN_PGSTAC_VENV"
"""Environment variable naming a separate virtual environment holding the pgstac tools."""

PIP_REQUIREMENTS = ("stac-fastapi-pgstac[server]", "pypgstac[psycopg]")
"""The pip requirements of this service."""

_ATTEMPTS = 3
_CHUNK = 500
_PG_SETTINGS = "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"


def _pip_hint() -> str:
    return "pip install " + " ".join(f"'{r}'" for r in PIP_REQUIREMENTS)


def _venv_bin_dirs() -> list[Path]:
    venv = os.environ.get(VENV_VARIABLE)
    return [Path(venv) / "bin"] if venv else []


def _version_key(bindir: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", Path(bindir).parent.name)) or (0,)


def _postgres_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/NN/bin`` that has ``initdb`` and ``pg_ctl``."""
    candidates = [
        d
        for d in glob.glob("/usr/lib/postgresql/*/bin")
        if os.access(Path(d) / "initdb", os.X_OK) and os.access(Path(d) / "pg_ctl", os.X_OK)
    ]
    if not candidates:
        return None
    return Path(max(candidates, key=_version_key))


def _is_root() -> bool:
    return os.geteuid() == 0


def pgstac_unavailable_reason() -> str | None:
    """Say why :class:`PgstacAPI` cannot run here, or return ``None`` if it can.

    Checks the PostgreSQL server binaries, the PostGIS extension files, the ``postgres``
    user and ``runuser`` (when running as root), and the Python packages (importable in
    this interpreter, or their executables in ``$STACRRN_PGSTAC_VENV/bin``).

    Returns
    -------
    str or None
        A one-line reason naming what to install, or ``None``.
    """
    bindir = _postgres_bindir()
    if bindir is None:
        return (
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
            "apt-get install postgresql-15 postgresql-15-postgis-3"
        )
    version = bindir.parent.name
    share = Path("/usr/share/postgresql") / version / "extension"
    if not (share / "postgis.control").is_file():
        return (
            f"the PostGIS extension is not installed for PostgreSQL {version}: "
            f"apt-get install postgresql-{version}-postgis-3"
        )
    if _is_root():
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return (
                "running as root but there is no 'postgres' user to run PostgreSQL as: "
                "apt-get install postgresql-common"
            )
        if shutil.which("runuser") is None:
            return "running as root but 'runuser' is missing: apt-get install util-linux"
    if os.environ.get(VENV_VARIABLE):
        missing = [name for name in ("pypgstac", "uvicorn") if find_executable(name, _venv_bin_dirs()) is None]
        python = Path(os.environ[VENV_VARIABLE]) / "bin" / "python"
        if missing or not python.is_file():
            return f"${VENV_VARIABLE}/bin lacks {', '.join(missing) or 'python'}: {_pip_hint()} into that venv"
        return None
    for module in ("pypgstac", "psycopg", "stac_fastapi.pgstac", "uvicorn"):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return f"python module {module!r} is not importable: {_pip_hint()}"
    for name in ("pypgstac", "uvicorn"):
        if find_executable(name) is None:
            return f"executable {name!r} not found next to the interpreter or on PATH: {_pip_hint()}"
    return None


class PgstacAPI(LoopbackService):
    """A throw-away PostgreSQL/pgstac database and a stac-fastapi-pgstac server on loopback.

    Parameters
    ----------
    workdir : Path, optional
        Directory for the cluster (``pg/``) and the logs (``pg/postgres.log``,
        ``pypgstac.log``, ``api.log``); kept on :meth:`stop` except for the cluster.
        Without it a temporary directory is created and removed on :meth:`stop`. As
        root, the directory must be traversable by the ``postgres`` user.

    Examples
    --------
    >>> with PgstacAPI() as api:                                  # doctest: +SKIP
    ...     api.load(collection, items)
    ...     Client.open(api.url).search(query={"eo:cloud_cover": {"lt": 20}})
    """

    def __init__(self, workdir: Path | None = None) -> None:
        self._workdir = None if workdir is None else Path(workdir)
        self._owns_workdir = False
        self._dir: Path | None = None
        self._bindir: Path | None = None
        self._pg_port: int | None = None
        self._pg_started = False
        self._api_port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # ----------------------------------------------------------------- properties

    @property
    def url(self) -> str:
        """The API root, ``http://127.0.0.1:PORT``.

        Raises
        ------
        ServiceError
            If the server is not running.
        """
        return f"http://{LOOPBACK}:{running_port(self._api_port, 'PgstacAPI')}"

    @property
    def dsn(self) -> str:
        """The database's connection string (trust auth, user ``postgres``).

        Raises
        ------
        ServiceError
            If the database is not running.
        """
        if self._pg_port is None or not self._pg_started:
            raise ServiceError("PgstacAPI's database is not running")
        return f"postgresql://postgres@{LOOPBACK}:{self._pg_port}/postgres"

    @property
    def workdir(self) -> Path | None:
        """The working directory, while running."""
        return self._dir

    def pg_env(self) -> dict[str, str]:
        """The libpq / pypgstac / stac-fastapi-pgstac variables for this database.

        They are passed to the child processes only; ``os.environ`` is never changed.

        Returns
        -------
        dict of str to str
            ``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGPASSWORD``, ``PGDATABASE`` and the
            ``POSTGRES_*`` names older stac-fastapi-pgstac releases read.

        Raises
        ------
        ServiceError
            If the database is not running.
        """
        if self._pg_port is None:
            raise ServiceError("PgstacAPI's database is not running")
        port = str(self._pg_port)
        return {
            "PGHOST": LOOPBACK,
            "PGPORT": port,
            "PGUSER": "postgres",
            "PGPASSWORD": "unused-trust-auth",
            "PGDATABASE": "postgres",
            "POSTGRES_USER": "postgres",
            "POSTGRES_PASS": "unused-trust-auth",
            "POSTGRES_HOST_READER": LOOPBACK,
            "POSTGRES_HOST_WRITER": LOOPBACK,
            "POSTGRES_PORT": port,
            "POSTGRES_DBNAME": "postgres",
        }

    # ------------------------------------------------------------------ lifecycle

    def _as_postgres(self, args: Sequence[str]) -> list[str]:
        if _is_root():
            return [require_executable("runuser", "apt-get install util-linux"), "-u", "postgres", "--", *args]
        return list(args)

    def _prepare_dir(self) -> Path:
        if self._workdir is None:
            base = Path(tempfile.mkdtemp(prefix="stacrrn-pgstac-"))
            self._owns_workdir = True
        else:
            base = self._workdir
            base.mkdir(parents=True, exist_ok=True)
        self._dir = base
        for old_log in ("initdb.log", "pypgstac.log", "api.log"):
            (base / old_log).unlink(missing_ok=True)
        pgdir = base / "pg"
        if pgdir.exists():
            shutil.rmtree(pgdir)
        pgdir.mkdir()
        if _is_root():
            if self._owns_workdir:
                base.chmod(0o711)  # mkdtemp makes it 0700: postgres must traverse it
            entry = pwd.getpwnam("postgres")
            os.chown(pgdir, entry.pw_uid, entry.pw_gid)
            probe = subprocess.run(self._as_postgres(["test", "-w", str(pgdir), "-a", "-x", str(pgdir)]), check=False)
            if probe.returncode != 0:
                raise ServiceError(
                    f"the postgres user cannot write to {pgdir}: every parent directory of the workdir "
                    "must be traversable by 'postgres' (chmod o+x), or leave workdir unset"
                )
        return pgdir

    def _start_postgres(self, pgdir: Path) -> None:
        assert self._bindir is not None
        data, log = pgdir / "data", pgdir / "postgres.log"
        run_checked(
            self._as_postgres(
                [
                    str(self._bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ]
            ),
            log=self._dir / "initdb.log" if self._dir else None,
            what="initdb",
        )
        for attempt in range(_ATTEMPTS):
            self._pg_port = free_port()
            options = f"-p {self._pg_port} -k {pgdir} {_PG_SETTINGS}"
            try:
                run_checked(
                    self._as_postgres(
                        [
                            str(self._bindir / "pg_ctl"),
                            "-D",
                            str(data),
                            "-l",
                            str(log),
                            "-w",
                            "-t",
                            "60",
                            "-o",
                            options,
                            "start",
                        ]
                    ),
                    what="pg_ctl start",
                    timeout=90.0,
                )
                self._pg_started = True
                return
            except ServiceError as error:
                if "in use" not in log_tail(log, 5) or attempt == _ATTEMPTS - 1:
                    raise ServiceError(f"{error}{log_tail(log)}") from error

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "POSTGRES_"))}
        env.update(self.pg_env())
        env["ENABLE_TRANSACTIONS_EXTENSIONS"] = "TRUE"
        env.pop("ENABLED_EXTENSIONS", None)
        # Named settings silence stac-fastapi's "using default values" warning.
        env.setdefault("STAC_FASTAPI_TITLE", "stacrrn loopback pgstac")
        env.setdefault("STAC_FASTAPI_DESCRIPTION", "Throw-away stac-fastapi-pgstac on 127.0.0.1 (stacrrn.services)")
        env.setdefault("STAC_FASTAPI_LANDING_ID", "stacrrn-pgstac")
        env.setdefault("STAC_FASTAPI_VERSION", "0.0.0")
        return env

    def _start_api(self, timeout: float) -> None:
        assert self._dir is not None
        uvicorn = require_executable("uvicorn", _pip_hint(), _venv_bin_dirs())
        log = self._dir / "api.log"
        env = self._child_env()
        for attempt in range(_ATTEMPTS):
            self._api_port = free_port()
            with log.open("ab") as sink:
                self._process = subprocess.Popen(
                    [
                        uvicorn,
                        "stac_fastapi.pgstac.app:create_app",
                        "--factory",
                        "--host",
                        LOOPBACK,
                        "--port",
                        str(self._api_port),
                        "--log-level",
                        "warning",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    cwd=self._dir,  # pydantic-settings reads ./.env: keep the repo's out of it
                    env=env,
                )
            try:
                wait_http(f"{self.url}/_mgmt/ping", timeout=timeout, log=log, process=self._process)
                return
            except ServiceError:
                stop_process(self._process)
                self._process = None
                if "in use" not in log_tail(log, 5) or attempt == _ATTEMPTS - 1:
                    raise

    def start(self, timeout: float = 60.0) -> None:
        """Create and start the database, install pgstac and start the API.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait for the API to answer ``/_mgmt/ping``.

        Raises
        ------
        ServiceError
            If something is missing (see :func:`pgstac_unavailable_reason`) or a step fails;
            everything started so far is stopped again.
        """
        if self._process is not None:
            return
        reason = pgstac_unavailable_reason()
        if reason is not None:
            raise ServiceError(f"PgstacAPI is unavailable: {reason}")
        self._bindir = _postgres_bindir()
        atexit.register(self.stop)
        try:
            pgdir = self._prepare_dir()
            self._start_postgres(pgdir)
            assert self._dir is not None
            pypgstac = require_executable("pypgstac", _pip_hint(), _venv_bin_dirs())
            run_checked(
                [pypgstac, "migrate"],
                env=self._child_env(),
                log=self._dir / "pypgstac.log",
                what="pypgstac migrate",
                timeout=300.0,
            )
            self._start_api(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the API and the database and remove the cluster (and a temporary workdir).

        Idempotent; errors while stopping the database are ignored.
        """
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        stop_process(process)
        self._api_port = None
        if self._pg_started and self._dir is not None and self._bindir is not None:
            subprocess.run(
                self._as_postgres(
                    [str(self._bindir / "pg_ctl"), "-D", str(self._dir / "pg" / "data"), "-m", "fast", "-w", "stop"]
                ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
                check=False,
            )
        self._pg_started = False
        self._pg_port = None
        if self._dir is not None:
            if self._owns_workdir:
                shutil.rmtree(self._dir, ignore_errors=True)
            else:
                shutil.rmtree(self._dir / "pg" / "data", ignore_errors=True)
        self._dir = None
        self._owns_workdir = False

    # ----------------------------------------------------------------------- data

    def load(self, collection: Mapping[str, Any], items: Sequence[Mapping[str, Any]] = ()) -> None:
        """Create or replace a collection and upsert items, through the transactions API.

        The collection is POSTed to ``/collections`` (PUT to ``/collections/{id}`` if it
        exists); items go in chunks of 500 to ``/collections/{id}/bulk_items`` with
        ``method=upsert``, so loading the same items twice is harmless.

        Parameters
        ----------
        collection : dict
            A STAC collection.
        items : list of dict, optional
            STAC items; their ``collection`` must be absent or equal to the collection id.

        Raises
        ------
        ServiceError
            If the API rejects the collection or any item.
        """
        collection_id = str(collection["id"])
        status, answer = http_json("POST", f"{self.url}/collections", dict(collection))
        if status == 409:
            status, answer = http_json("PUT", f"{self.url}/collections/{collection_id}", dict(collection))
        if status not in (200, 201):
            raise ServiceError(f"cannot store collection {collection_id!r}: HTTP {status}: {answer}")
        item_list = list(items)
        for start in range(0, len(item_list), _CHUNK):
            chunk = item_list[start : start + _CHUNK]
            body = {"items": {str(item["id"]): dict(item) for item in chunk}, "method": "upsert"}
            if len(body["items"]) != len(chunk):
                raise ServiceError(f"duplicate item ids in the items for collection {collection_id!r}")
            status, answer = http_json("POST", f"{self.url}/collections/{collection_id}/bulk_items", body)
            if status not in (200, 201):
                raise ServiceError(f"cannot store items in {collection_id!r}: HTTP {status}: {answer}")
            if isinstance(answer, dict) and answer.get("errors"):
                raise ServiceError(f"items rejected by {self.url}: {answer['errors']}")
