"""An S3 endpoint on loopback: moto's threaded server, with the environment GDAL and boto need.

The server runs in a daemon thread of the current process and keeps its buckets in
moto's process-global in-memory backend, so two servers in one process share state.
Other processes (dask workers, ``gdalinfo``) reach it over HTTP like any S3 endpoint.
"""

from __future__ import annotations

import logging
import os
import sys
from types import TracebackType
from typing import Any, Self

from stacrrn.errors import ServiceError
from stacrrn.services.common import LOOPBACK, LoopbackService, running_port, wait_http

DUMMY_KEY = "testing"
"""The access key id and secret moto accepts (any value works; a value must be set)."""


def _quiet_werkzeug() -> None:
    """Silence werkzeug's per-request access log unless someone configured its logger."""
    werkzeug_logger = logging.getLogger("werkzeug")
    if werkzeug_logger.level == logging.NOTSET:
        werkzeug_logger.setLevel(logging.WARNING)


def _clear_s3fs_cache() -> None:
    """Forget cached ``s3fs.S3FileSystem`` instances, which remember their endpoint."""
    s3fs = sys.modules.get("s3fs")
    if s3fs is not None:
        s3fs.S3FileSystem.clear_instance_cache()


class LoopbackS3(LoopbackService):
    """A moto S3 server bound to ``127.0.0.1``.

    Used as a context manager it also exports :meth:`env` into ``os.environ`` (and
    restores the previous values on exit), so rasterio's ``/vsis3/``, boto3 and
    ``s3fs.S3FileSystem()`` all talk to it without further arguments.

    Parameters
    ----------
    port : int, optional
        The port to bind; by default the kernel picks a free one at bind time, which
        cannot race with other processes.

    Examples
    --------
    >>> with LoopbackS3() as s3:                      # doctest: +SKIP
    ...     s3.create_bucket("demo")
    ...     rasterio.open("/vsis3/demo/scene.tif")
    """

    def __init__(self, port: int | None = None) -> None:
        self._requested_port = port
        self._server: Any = None
        self._port: int | None = None
        self._saved_env: dict[str, str | None] | None = None

    @property
    def port(self) -> int:
        """The bound port.

        Raises
        ------
        ServiceError
            If the server is not running.
        """
        return running_port(self._port, "LoopbackS3")

    @property
    def endpoint(self) -> str:
        """The endpoint URL, ``http://127.0.0.1:PORT``."""
        return f"http://{LOOPBACK}:{self.port}"

    def env(self) -> dict[str, str]:
        """Environment variables that point GDAL, boto3 and s3fs at this server.

        Returns
        -------
        dict of str to str
            ``AWS_ENDPOINT_URL`` (boto3/botocore >= 1.31, hence s3fs), ``AWS_S3_ENDPOINT``,
            ``AWS_HTTPS`` and ``AWS_VIRTUAL_HOSTING`` (GDAL), dummy credentials, the region
            (``AWS_REGION`` for GDAL, ``AWS_DEFAULT_REGION`` for botocore) and
            ``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR`` (no bucket listing on open).
        """
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_S3_ENDPOINT": f"{LOOPBACK}:{self.port}",
            "AWS_HTTPS": "NO",
            "AWS_VIRTUAL_HOSTING": "FALSE",
            "AWS_ACCESS_KEY_ID": DUMMY_KEY,
            "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        }

    @property
    def running(self) -> bool:
        """Whether the server is running."""
        return self._server is not None

    def start(self) -> None:
        """Start the server and wait until it answers.

        Does not touch ``os.environ``; the context manager does.

        Raises
        ------
        ServiceError
            If moto is not installed or the server does not answer.
        """
        if self._server is not None:
            return
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as error:
            raise ServiceError("moto is not installed: pip install 'moto[server]'") from error
        # Port 0 lets the kernel choose at bind time: no window for another process to
        # take the port between choosing and binding it.
        _quiet_werkzeug()
        server = ThreadedMotoServer(ip_address=LOOPBACK, port=self._requested_port or 0, verbose=False)
        server.start()
        self._server = server
        self._port = int(server.get_host_and_port()[1])
        try:
            wait_http(f"{self.endpoint}/", timeout=30.0)
        except ServiceError:
            self.stop()
            raise
        _clear_s3fs_cache()

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        self._port = None
        _clear_s3fs_cache()

    def create_bucket(self, name: str) -> None:
        """Create a bucket; nothing happens if it already exists.

        Parameters
        ----------
        name : str
            The bucket name.

        Raises
        ------
        ServiceError
            If the bucket cannot be created.
        """
        import boto3
        from botocore.exceptions import ClientError

        env = self.env()
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_REGION"],
        )
        try:
            client.create_bucket(Bucket=name)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise ServiceError(f"cannot create bucket {name!r} at {self.endpoint}: {error}") from error

    def _apply_env(self) -> None:
        variables = self.env()
        self._saved_env = {key: os.environ.get(key) for key in variables}
        os.environ.update(variables)

    def _restore_env(self) -> None:
        saved, self._saved_env = self._saved_env, None
        for key, value in (saved or {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def __enter__(self) -> Self:
        self.start()
        self._apply_env()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            self._restore_env()
