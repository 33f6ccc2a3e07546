"""Output storage: a local folder or an ``s3://bucket/prefix``, written atomically.

Every object is first written under a temporary key (``.stacrrn-tmp/<run id>/...``) and only
then moved (renamed locally, copied server-side on S3) to its final key, so a reader never
sees a partial object. S3 endpoints and credentials come from the environment
(``AWS_ENDPOINT_URL`` etc.), as for boto3; :func:`configure_cloud` derives GDAL's settings
from the same variables.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import fsspec

from stacrrn.errors import OutputError, ParameterError, TransientIOError
from stacrrn.io.files import TMP_DIR
from stacrrn.io.retry import NETWORK_TIMEOUT, retrying

T = TypeVar("T")


def configure_cloud() -> dict[str, str]:
    """Make GDAL (rasterio, odc-stac) use the same S3 endpoint as boto3, and return its settings.

    With ``AWS_ENDPOINT_URL=http://host:port`` set (e.g. a local S3 server), GDAL needs
    ``AWS_S3_ENDPOINT=host:port``, ``AWS_HTTPS=NO`` and path-style addressing. The settings
    go to ``os.environ`` (so threads and spawned workers inherit them) without overriding
    what the user set. odc-stac gets them when it loads (:func:`~stacrrn.pipeline.loading.stac_plan.load_lazy`).

    GDAL lists no remote folder on open (:func:`~stacrrn.io.raster.list_no_remote_folders`);
    local folders are listed, so local sidecar files (masks, world files) are found. The
    settings returned also hold ``GDAL_DISABLE_READDIR_ON_OPEN`` (``EMPTY_DIR`` unless the user
    set it) for odc-stac's readers, which may run in processes where this was not called.
    """
    from stacrrn.io.raster import READDIR_OPTION, list_no_remote_folders

    list_no_remote_folders()
    env = {"GDAL_HTTP_MAX_RETRY": "4", "GDAL_HTTP_RETRY_DELAY": "0.5"}
    # a server that accepts and never answers fails the read after this long (then it is retried)
    env |= {"GDAL_HTTP_TIMEOUT": str(round(NETWORK_TIMEOUT)), "GDAL_HTTP_CONNECTTIMEOUT": "30"}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        env |= {
            "AWS_S3_ENDPOINT": host.rstrip("/"),
            "AWS_HTTPS": "NO" if scheme == "http" else "YES",
            "AWS_VIRTUAL_HOSTING": "FALSE",
        }
    for key, value in env.items():
        os.environ.setdefault(key, value)
    return {k: os.environ[k] for k in env} | {READDIR_OPTION: os.environ.get(READDIR_OPTION, "EMPTY_DIR")}


def object_identity(href: str) -> list[object]:
    """A file's or object's href with its size and ETag or modification time, when the store tells them.

    Keys caches of statistics: a file replaced in place gets another identity.
    """
    try:
        fs, path = fsspec.core.url_to_fs(href)
        info = fs.info(path)
    except Exception:  # an identity is best effort: unknown stores and HEAD failures fall back to the href
        return [href]
    return [href, info.get("size"), info.get("ETag") or info.get("mtime") or info.get("LastModified")]


def sha256_multihash(path: str | os.PathLike[str]) -> str:
    """``file:checksum`` of a file: the multihash (``1220`` + hex) of its SHA-256."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "1220" + digest.hexdigest()


class Storage:
    """A place to publish a run's outputs (local folder or ``s3://bucket/prefix``).

    Parameters
    ----------
    url
        Folder path or ``s3://bucket/prefix``.
    """

    def __init__(self, url: str) -> None:
        url = url.removeprefix("file://")
        if "://" in url and not url.startswith("s3://"):
            raise ParameterError(f"--out {url}: outputs go to a local folder or s3://bucket/prefix")
        self.url = url.rstrip("/")
        self.is_s3 = url.startswith("s3://")
        self.run_id = uuid.uuid4().hex[:12]
        if self.is_s3:
            import s3fs

            self.fs: Any = s3fs.S3FileSystem(
                config_kwargs={"retries": {"max_attempts": 5, "mode": "standard"}}, skip_instance_cache=True
            )
            self.root = self.url[5:]
        else:
            self.fs = fsspec.filesystem("file")
            self.root = str(Path(url).absolute())
        self._made_root = not self.is_s3 and not os.path.exists(self.root)

    def href(self, key: str) -> str:
        """Absolute href of ``key`` (``s3://...`` or an absolute path)."""
        return f"s3://{self.root}/{key}" if self.is_s3 else f"{self.root}/{key}"

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _temporary(self, key: str) -> str:
        return f"{self.root}/{TMP_DIR}/{self.run_id}/{key}"

    def check_writable(self) -> None:
        """Fail early, creating nothing visible, if the location cannot be written.

        A folder (or its nearest existing parent) must be writable; on S3 a probe object is
        written under the temporary prefix and deleted.

        Raises
        ------
        OutputError
            If the location cannot be written.
        """
        if not self.is_s3:
            existing = Path(self.root)
            while not existing.exists():
                existing = existing.parent
            if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
                raise OutputError(f"cannot write to {self.url}: {existing} is not a writable folder")
            return
        probe = self._temporary("probe")
        try:
            self.fs.pipe_file(probe, b"ok")
            self.fs.rm_file(probe)
        except Exception as exc:  # any backend failure (no bucket, denied, unreachable) means "cannot write"
            raise OutputError(f"cannot write to {self.url}: {type(exc).__name__}: {exc}"[:300]) from None

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``, retried on transient faults when the storage is remote."""
        return retrying(f"{what} ({self.url})", fn) if self.is_s3 else fn()

    def exists(self, key: str) -> bool:
        """True if ``key`` exists."""
        return bool(self._call(f"look for {key}", lambda: self.fs.exists(self._path(key))))

    def read_text(self, key: str) -> str | None:
        """Text of ``key``, or ``None`` if it does not exist (or is not text).

        Raises
        ------
        OutputError
            If it exists but cannot be read (e.g. access denied).
        """
        data = self.read_bytes(key)
        try:
            return None if data is None else data.decode()
        except UnicodeDecodeError:
            return None

    def read_bytes(self, key: str) -> bytes | None:
        """Content of ``key``, or ``None`` if it does not exist.

        Raises
        ------
        OutputError
            If it exists but cannot be read (e.g. access denied).
        """
        try:
            data: bytes = self._call(f"read {key}", lambda: self.fs.cat_file(self._path(key)))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as exc:  # denied, or a fault the retries did not cure
            raise OutputError(f"cannot read {self.href(key)}: {exc}") from None
        return data

    def read_json(self, key: str) -> dict[str, Any] | None:
        """The JSON object at ``key``, or ``None`` if it does not exist or is not a JSON object."""
        text = self.read_text(key)
        try:
            d = json.loads(text) if text else None
        except ValueError:
            return None
        return d if isinstance(d, dict) else None

    def tagged_text(self, key: str) -> tuple[str, str] | None:
        """Text of ``key`` and a tag of its current version (ETag on S3, content hash locally), or ``None``."""
        if self.is_s3:
            try:
                tag = str(self._call(f"look at {key}", lambda: self.fs.info(self._path(key), refresh=True))["ETag"])
            except FileNotFoundError:
                return None
            text = self.read_text(key)
            return None if text is None else (text, tag)
        text = self.read_text(key)
        return None if text is None else (text, hashlib.sha256(text.encode()).hexdigest())

    def create_text(self, key: str, text: str) -> bool:
        """Write ``text`` to ``key`` only if ``key`` does not exist; ``False`` if it does.

        Exclusive: of two callers, one wins (``O_EXCL`` locally, ``If-None-Match: *`` on S3).
        A retry after a lost answer finds the object written and reports ``False``; callers
        that need to know tell their own text apart.
        """
        if self.is_s3:
            try:
                self._call(f"create {key}", lambda: self.fs.pipe_file(self._path(key), text.encode(), mode="create"))
            except FileExistsError:
                return False
            return True
        path = Path(self._path(key))
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return True

    def replace_text_if(self, key: str, text: str, tag: str) -> bool:
        """Replace ``key`` by ``text`` only if it is still the version ``tag``; ``False`` otherwise."""
        if self.is_s3:
            try:
                self._call(f"replace {key}", lambda: self.fs.pipe_file(self._path(key), text.encode(), IfMatch=tag))
            except FileNotFoundError:
                return False
            except OSError as exc:
                if exc.errno == errno.EINVAL:  # 412 Precondition Failed: another version
                    return False
                raise
            return True
        try:
            f = open(self._path(key), "r+b")  # noqa: SIM115 (closed below, after the lock on it is released)
        except FileNotFoundError:
            return False
        with f:
            fcntl.flock(f, fcntl.LOCK_EX)  # replacements of this file take turns; the file never disappears
            if hashlib.sha256(f.read()).hexdigest() != tag:
                return False
            f.seek(0)
            f.truncate()
            f.write(text.encode())
            f.flush()
            os.fsync(f.fileno())
        return True

    def delete_key(self, key: str) -> None:
        """Delete ``key`` if it exists."""

        def rm() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self._path(key))

        self._call(f"delete {key}", rm)

    def _remove_temporary(self, tmp: str) -> None:
        def rm() -> None:
            with contextlib.suppress(FileNotFoundError):  # a retry after a lost answer: already gone
                self.fs.rm_file(tmp)

        self._call("remove a temporary object", rm)

    def _publish(self, tmp: str, key: str) -> None:
        final = self._path(key)
        if self.is_s3:
            self._call(f"publish {key}", lambda: self.fs.copy(tmp, final))
            self._remove_temporary(tmp)
        else:
            Path(final).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)

    def put_file(self, local: str | os.PathLike[str], key: str) -> str:
        """Upload (or move into place) a finished local file; return its href."""
        tmp = self._temporary(key)
        try:
            if not self.is_s3:
                Path(tmp).parent.mkdir(parents=True, exist_ok=True)
            self._call(f"upload {key}", lambda: self.fs.put_file(str(local), tmp))
            self._publish(tmp, key)
        except OSError as exc:
            raise OutputError(f"cannot write {self.href(key)}: {exc}") from None
        return self.href(key)

    def move_file(self, local: str | os.PathLike[str], key: str) -> str:
        """Publish a finished local file the caller is done with; return its href.

        A local destination on the same file system gets the file by rename (no copy);
        otherwise it is uploaded or copied as by :meth:`put_file`. The local file is gone
        afterwards either way.
        """
        if not self.is_s3:
            tmp = self._temporary(key)
            try:
                Path(tmp).parent.mkdir(parents=True, exist_ok=True)
                os.replace(local, tmp)
            except OSError:  # another file system (or device): copy below
                pass
            else:
                try:
                    self._publish(tmp, key)
                except OSError as exc:
                    raise OutputError(f"cannot write {self.href(key)}: {exc}") from None
                return self.href(key)
        href = self.put_file(local, key)
        Path(local).unlink(missing_ok=True)
        return href

    def put_text(self, text: str, key: str) -> str:
        """Write ``text`` to ``key`` atomically; return its href."""
        return self.put_bytes(text.encode(), key)

    def put_bytes(self, data: bytes, key: str) -> str:
        """Write ``data`` to ``key`` atomically; return its href."""
        tmp = self._temporary(key)
        try:
            if not self.is_s3:
                Path(tmp).parent.mkdir(parents=True, exist_ok=True)
            self._call(f"upload {key}", lambda: self.fs.pipe_file(tmp, data))
            self._publish(tmp, key)
        except OSError as exc:
            raise OutputError(f"cannot write {self.href(key)}: {exc}") from None
        return self.href(key)

    def owns(self, href: str) -> bool:
        """True if ``href`` names an object inside this storage: under its root, no ``..``, not the root."""
        prefix = self.href("")
        key = href[len(prefix) :] if href.startswith(prefix) else ""
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts) or "\\" in key:
            return False
        if self.is_s3:
            return True
        root = os.path.realpath(self.root)
        return os.path.realpath(self._path(key)).startswith(root + os.sep)

    def delete(self, hrefs: list[str]) -> None:
        """Delete objects by href; hrefs that this storage does not own (:meth:`owns`) are never touched."""
        prefix = self.href("")
        paths = [self._path(h[len(prefix) :]) for h in hrefs if self.owns(h)]
        for path in paths:
            with contextlib.suppress(OSError, TransientIOError):  # gone already, or left unreferenced: nothing lost
                self._call("delete a superseded object", functools.partial(self.fs.rm_file, path))

    def delete_tree(self, href: str) -> None:
        """Delete a folder (a Zarr store) and everything under it, if this storage owns it (:meth:`owns`)."""
        if not self.owns(href):
            return
        path = self._path(href[len(self.href("")) :])
        with contextlib.suppress(FileNotFoundError, TransientIOError):  # gone already: nothing lost
            self._call("delete a superseded store", functools.partial(self.fs.rm, path, recursive=True))

    def remove_stale_temporaries(self) -> list[str]:
        """Remove the temporary keys other runs left here (killed mid-write); return their run ids.

        Only safe while this run holds the location's lock (:class:`stacrrn.io.lock.OutputLock`):
        then no other run is writing here.
        """
        parent = f"{self.root}/{TMP_DIR}"
        try:
            names = [
                p.rstrip("/").rsplit("/", 1)[-1] for p in self._call("list temporaries", lambda: self.fs.ls(parent))
            ]
        except FileNotFoundError:
            return []
        stale = [n for n in names if n != self.run_id]
        for name in stale:
            with contextlib.suppress(FileNotFoundError):
                self._call(
                    "remove stale temporaries", functools.partial(self.fs.rm, f"{parent}/{name}", recursive=True)
                )
        return stale

    def cleanup(self) -> None:
        """Remove this run's temporary keys (and the output folder, if this run made it and left it empty)."""
        tmp = f"{self.root}/{TMP_DIR}/{self.run_id}"
        try:
            if self.fs.exists(tmp):
                self.fs.rm(tmp, recursive=True)
            parent = f"{self.root}/{TMP_DIR}"
            if not self.is_s3 and os.path.isdir(parent) and not os.listdir(parent):
                os.rmdir(parent)
            if self._made_root and os.path.isdir(self.root) and not os.listdir(self.root):
                os.rmdir(self.root)  # a run that wrote nothing leaves no folder behind
        except OSError:
            pass
