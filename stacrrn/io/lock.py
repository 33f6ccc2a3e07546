"""One run at a time per output location: a lease-based lock object beside the outputs.

A run creates ``stacrrn.lock`` under its output location exclusively and renews its lease
while it works; a second run finds the lock and stops with
:class:`~stacrrn.errors.RunLockedError` (exit code 75) before writing anything.

Creation is atomic with the lock's whole content, so no reader ever sees an empty or partial
lock. Locally the content is written to a unique temporary file in the same folder, which is
then hard-linked to ``stacrrn.lock`` (``link()`` fails if the name exists: of two creators,
one wins) and unlinked. On S3 a single ``PUT`` with ``If-None-Match: *`` writes the whole
object or nothing. (On a local file system without hard links, the lock falls back to an
``O_EXCL`` create and then a write.)

A lock is stale, and may be taken over, only when it is complete and says so: its lease has
run out (the run died on another machine), or its process is gone on this machine (a killed
run being resumed). A lock that cannot be read as a complete lease (empty, partial, garbage)
is another run's lock being written; it becomes stale only once the file is older than a
lease (its writer crashed mid-write), judged by its modification time.

Every change to an existing lock (a takeover, a renewal, a release) is a compare-and-swap:
it applies only to the version that was judged. On S3 that is ``If-Match`` on the ETag.
Locally, the changer takes ``flock`` on the lock file it opened, checks that the name still
names that same file (same device and inode; otherwise it was replaced meanwhile and the
changer starts again), re-reads and re-judges it, and only then renames a complete temporary
file over it (or unlinks it, on release) while still holding ``flock``. Of several runs
taking over one stale lock, the first to get ``flock`` replaces it; the others then find the
name pointing at another file, look again, and see a live lock. Because the name never stops
naming a file during a takeover, a run creating the lock at the same moment cannot slip in
either. Renaming the stale lock aside to a unique name was the alternative; it was not chosen
because a rename cannot tell the version it moves: a slower taker would move aside the fresh
lock the first taker had just created, so it needs this comparison anyway.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

from stacrrn.errors import RunLockedError
from stacrrn.io.retry import retrying
from stacrrn.io.storage import Storage

log = logging.getLogger(__name__)

LOCK_KEY = "stacrrn.lock"
"""Key of the lock object under the output location."""

LEASE_ENV = "STACRRN_LOCK_LEASE"
"""Environment variable overriding :data:`LEASE_SECONDS`."""

LEASE_SECONDS = 600.0
"""How long a lock stays valid without renewal; renewed every third of it."""

Clock = Callable[[], dt.datetime]
"""A source of the current time (timezone-aware)."""

_ATTEMPTS = 5
"""Looks at the lock before giving up when it keeps changing under an acquiring run."""

_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})
"""``link()`` errors meaning the file system has no hard links."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def lease_seconds() -> float:
    """``$STACRRN_LOCK_LEASE`` or :data:`LEASE_SECONDS`."""
    try:
        return max(1.0, float(os.environ.get(LEASE_ENV, LEASE_SECONDS)))
    except ValueError:
        return LEASE_SECONDS


@dataclass(frozen=True)
class _Seen:
    """One version of the lock as read."""

    holder: dict[str, Any]
    """Its content, ``{}`` if it is not a JSON object."""
    written: dt.datetime | None
    """When it was last written (file modification time, S3 ``LastModified``), if known."""
    tag: str
    """Its version (ETag on S3)."""


class _LockFile(Protocol):
    def create(self, text: str) -> bool:
        """Write the lock with ``text`` only if there is none; ``False`` if there is one."""

    def look(self) -> _Seen | None:
        """The lock as it is, or ``None`` if there is none."""

    def swap(self, judge: Callable[[_Seen], bool], text: str | None) -> bool:
        """Replace the lock by ``text`` (delete it if ``None``) if ``judge`` approves the version replaced.

        ``False`` if there is no lock, ``judge`` refuses it, or it changed in between.
        """


def _read(fd: int) -> _Seen:
    """The lock open as ``fd``, read from its start."""
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 16, offset):
        chunks.append(chunk)
        offset += len(chunk)
    data = b"".join(chunks)
    st = os.fstat(fd)
    return _Seen(
        _parse(data.decode(errors="replace")),
        dt.datetime.fromtimestamp(st.st_mtime, dt.UTC),
        f"{st.st_dev}:{st.st_ino}:{hashlib.sha256(data).hexdigest()}",
    )


def _open_to_lock(path: str) -> int:
    """``path`` open for ``flock`` (NFS wants it writable for an exclusive one)."""
    try:
        return os.open(path, os.O_RDWR)
    except PermissionError:  # another user's lock: locally, flock works on a read-only descriptor too
        return os.open(path, os.O_RDONLY)


class _LocalLockFile:
    """The lock as a file: created by ``link()``, changed under ``flock`` (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.folder = os.path.dirname(path)

    def _temporary(self, text: str) -> str:
        """A new file beside the lock holding ``text`` in full."""
        os.makedirs(self.folder, exist_ok=True)
        temp = os.path.join(self.folder, f".{LOCK_KEY}.{uuid.uuid4().hex}.tmp")
        fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(text.encode())
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        return temp

    def create(self, text: str) -> bool:
        temp = self._temporary(text)
        try:
            os.link(temp, self.path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            return self._create_in_place(text)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        return True

    def _create_in_place(self, text: str) -> bool:
        """Without hard links: create, then write; a reader may see the lock partial (and leaves it alone)."""
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode())
            f.flush()
            os.fsync(f.fileno())
        return True

    def look(self) -> _Seen | None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            return _read(fd)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _held(self) -> Iterator[int | None]:
        """The lock file open and under ``flock``, while its name still names it; ``None`` if there is none."""
        while True:
            try:
                fd = _open_to_lock(self.path)
            except FileNotFoundError:
                yield None
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # released by closing
                try:
                    named = os.stat(self.path)
                except FileNotFoundError:
                    continue  # deleted meanwhile: look again
                opened = os.fstat(fd)
                if (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino):
                    yield fd
                    return
                # replaced meanwhile: look again
            finally:
                os.close(fd)

    def swap(self, judge: Callable[[_Seen], bool], text: str | None) -> bool:
        with self._held() as fd:
            if fd is None or not judge(_read(fd)):
                return False
            if text is None:
                os.unlink(self.path)
                return True
            temp = self._temporary(text)
            try:
                os.replace(temp, self.path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
                raise
            return True


class _S3LockFile:
    """The lock as an S3 object: created with ``If-None-Match: *``, changed with ``If-Match``."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.path = f"{storage.root}/{LOCK_KEY}"

    def create(self, text: str) -> bool:
        return self.storage.create_text(LOCK_KEY, text)

    def look(self) -> _Seen | None:
        fs = self.storage.fs
        try:
            info = retrying(f"look at {LOCK_KEY} ({self.storage.url})", lambda: fs.info(self.path, refresh=True))
        except FileNotFoundError:
            return None
        text = self.storage.read_text(LOCK_KEY)  # this version or a later one: a swap on the ETag then fails
        if text is None:
            return None
        written = info.get("LastModified")
        return _Seen(_parse(text), written if isinstance(written, dt.datetime) else None, str(info["ETag"]))

    def swap(self, judge: Callable[[_Seen], bool], text: str | None) -> bool:
        seen = self.look()
        if seen is None or not judge(seen):
            return False
        if text is None:  # unconditional: only a run whose lease ran out can lose its lock in between
            self.storage.delete_key(LOCK_KEY)
            return True
        return self.storage.replace_text_if(LOCK_KEY, text, seen.tag)


class OutputLock:
    """The lock of one run on one output location (a context manager).

    Parameters
    ----------
    storage
        The run's output location.
    clock
        The current time (timezone-aware), for leases and for judging other runs' locks; the
        system clock by default.
    """

    def __init__(self, storage: Storage, *, clock: Clock | None = None) -> None:
        self.storage = storage
        self.token = uuid.uuid4().hex
        self.lease = lease_seconds()
        self.clock: Clock = clock or _now
        self._file: _LockFile = _S3LockFile(storage) if storage.is_s3 else _LocalLockFile(storage.href(LOCK_KEY))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> str:
        now = self.clock()
        return json.dumps(
            {
                "token": self.token,
                "run_id": self.storage.run_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "renewed": now.isoformat(),
                "expires": (now + dt.timedelta(seconds=self.lease)).isoformat(),
            }
        )

    def _mine(self, seen: _Seen | None) -> bool:
        return seen is not None and seen.holder.get("token") == self.token

    def _stale(self, seen: _Seen) -> bool:
        return stale(seen.holder, self.clock(), written=seen.written, lease=self.lease)

    def _take(self) -> None:
        self._thread = threading.Thread(target=self._renew, name="stacrrn-lock", daemon=True)
        self._thread.start()

    def acquire(self) -> None:
        """Take the lock, or a stale one over.

        Raises
        ------
        RunLockedError
            If another live run holds the location, or is writing its lock.
        """
        seen: _Seen | None = None
        for _ in range(_ATTEMPTS):
            if self._file.create(self._body()):
                return self._take()
            seen = self._file.look()
            if seen is None:  # released in between: try again
                continue
            if self._mine(seen):  # a create whose answer was lost, retried
                return self._take()
            if not self._stale(seen):
                break
            if self._file.swap(self._stale, self._body()):
                log.info("took over the stale lock of run %s", seen.holder.get("run_id", "?"))
                return self._take()
            # another run changed it first: look again
        raise self._locked(seen)

    def _locked(self, seen: _Seen | None) -> RunLockedError:
        holder = seen.holder if seen is not None else {}
        if seen is not None and _expiry(holder) is None:
            lease = (
                "its lock is still being written, or was left incomplete and is taken over once older than "
                f"{self.lease:g} s"
            )
        else:
            lease = f"lease until {holder.get('expires', '?')}"
        return RunLockedError(
            f"{self.storage.url} is being written by run {holder.get('run_id', '?')} (pid {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')}, {lease}); wait for it to finish, or delete "
            f"{self.storage.href(LOCK_KEY)} if that run is dead"
        )

    def renew(self) -> bool:
        """Extend this run's lease from now (done every third of the lease while the lock is held).

        Returns
        -------
        bool
            ``False`` if the lock is no longer this run's (another run took it over).
        """
        if self._file.swap(self._mine, self._body()):
            return True
        return self._mine(self._file.look())  # a replacement whose answer was lost, retried

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                if not self.renew():
                    log.warning("the lock on %s was taken by another run", self.storage.url)
                    return
            except Exception as exc:  # a renewal that fails is retried at the next beat; the run goes on
                log.warning("could not renew the lock on %s: %s", self.storage.url, exc)

    def release(self) -> None:
        """Stop renewing and delete the lock if it is still this run's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._file.swap(self._mine, None)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _parse(text: str) -> dict[str, Any]:
    try:
        d = json.loads(text)
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


def _expiry(holder: dict[str, Any]) -> dt.datetime | None:
    """The end of the lease ``holder`` wrote, or ``None`` if it wrote no readable one."""
    try:
        expires = dt.datetime.fromisoformat(str(holder["expires"]))
    except (KeyError, ValueError):
        return None
    return expires if expires.tzinfo is not None else expires.replace(tzinfo=dt.UTC)


def stale(
    holder: dict[str, Any],
    now: dt.datetime | None = None,
    *,
    written: dt.datetime | None = None,
    lease: float | None = None,
) -> bool:
    """True if the lock ``holder`` wrote may be taken over.

    Parameters
    ----------
    holder
        The lock's content (``{}`` if it is not a JSON object).
    now
        The current time; the system clock by default.
    written
        When the lock was last written, if known (file modification time, S3 ``LastModified``).
    lease
        Seconds after ``written`` when a lock without a readable lease becomes stale;
        :func:`lease_seconds` by default.

    Returns
    -------
    bool
        For a complete lock (a readable ``expires``): its lease has run out, or its process
        is gone on this host. For any other (empty, partial, garbage: still being written):
        it was written more than ``lease`` seconds before ``now`` (its writer died), never if
        ``written`` is unknown.
    """
    now = now or _now()
    expires = _expiry(holder)
    if expires is None:
        age = lease if lease is not None else lease_seconds()
        return written is not None and (now - written).total_seconds() > age
    if expires < now:
        return True
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid)
