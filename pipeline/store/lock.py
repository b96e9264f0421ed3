"""One writer per store: a lock file created atomically, with stale-lock takeover.

The lock lives beside the store (``<store>.lock``), not inside it: zarr warns about foreign files
when it lists a hierarchy, and ``create_store(overwrite=True)`` deletes the store directory, which
would silently drop a lock kept inside it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from contextlib import contextmanager
from pathlib import Path

import psutil

from ..provenance import utc_now
from .errors import StoreLocked

log = logging.getLogger(__name__)

# lock files this process holds, so code that must run under the lock can tell it is already taken
_HELD: set[Path] = set()


def lock_path(store_path: str | os.PathLike) -> Path:
    store_path = Path(store_path)
    return store_path.with_name(store_path.name + ".lock")


def _process_started(pid: int) -> float | None:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return -1.0  # exists, owned by someone else


def _holder_alive(holder: dict) -> bool:
    started = _process_started(int(holder.get("pid", -1)))
    if started is None:
        return False
    # a recycled pid belongs to a process that started after the lock's owner
    recorded = holder.get("process_started")
    return started < 0 or recorded is None or abs(started - float(recorded)) < 1.0


class StoreLock:
    """``with StoreLock(path):`` -- refuse a second writer, take over a dead one's lock.

    A lock from another host cannot be checked for liveness and is refused unless force=True.
    After entering, ``took_over`` holds the stale lock's contents when one was replaced.
    """

    def __init__(self, path: str | os.PathLike, force: bool = False):
        self.store_path = Path(path)
        self.path = lock_path(path)
        self.force = force
        self.took_over: dict | None = None
        self._token = uuid.uuid4().hex
        self._held = False

    def _record(self) -> dict:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "created": utc_now(),
            "token": self._token,
            "process_started": psutil.Process().create_time(),
        }

    def _try_create(self) -> bool:
        # write the record under a private name, then hard-link it into place: link fails if the
        # lock exists (like O_EXCL) and nobody ever sees a lock file without its contents
        draft = self.path.with_name(f"{self.path.name}.draft-{self._token}")
        fd = os.open(draft, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "w") as handle:
            json.dump(self._record(), handle)
        try:
            os.link(draft, self.path)
        except FileExistsError:
            return False
        finally:
            draft.unlink(missing_ok=True)
        return True

    def _read_holder(self) -> tuple[dict, str]:
        """The holder's record and the file's raw text ({} and "" when there is no lock)."""
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            return {}, ""
        try:
            return json.loads(raw), raw
        except ValueError:
            return {"pid": -1, "host": "?", "unreadable": raw[:80]}, raw

    def _take_over(self, holder: dict, raw: str) -> None:
        # move the stale file aside under a unique name; if what we moved is not the stale lock we
        # read (another process took over first), put it back and give up
        aside = self.path.with_name(f"{self.path.name}.stale-{self._token}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        if aside.read_text() != raw:
            try:
                os.link(aside, self.path)
            finally:
                aside.unlink(missing_ok=True)
            raise StoreLocked(f"{self.store_path} was taken over by another writer while we checked its lock")
        aside.unlink(missing_ok=True)
        self.took_over = holder

    def acquire(self) -> StoreLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._try_create():
                self._held = True
                _HELD.add(self.path.resolve())
                return self
            holder, raw = self._read_holder()
            if not raw:
                continue  # released between our attempt and the read
            who = f"{holder.get('pid')}@{holder.get('host')}"
            same_host = holder.get("host") == socket.gethostname()
            if same_host and _holder_alive(holder):
                raise StoreLocked(
                    f"{self.store_path} is being written by {who} since {holder.get('created')} (lock file {self.path})"
                )
            if not same_host and not self.force:
                raise StoreLocked(
                    f"{self.store_path} is locked by {who} on another host; if that writer is gone, "
                    f"rerun with force or delete {self.path}"
                )
            log.warning(
                "taking over the stale lock of %s on %s (created %s)", who, self.store_path, holder.get("created")
            )
            self._take_over(holder, raw)
        raise StoreLocked(f"could not acquire {self.path}: other writers keep racing for it")

    def release(self) -> None:
        if self._held and self._read_holder()[0].get("token") == self._token:
            self.path.unlink(missing_ok=True)
        if self._held:
            _HELD.discard(self.path.resolve())
        self._held = False

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


@contextmanager
def store_locked(path: str | os.PathLike):
    """Run the block under the store's lock: the one this process already holds (stage one takes it
    before anything else), or a fresh one that a second writer cannot get."""
    if lock_path(path).resolve() in _HELD:
        yield
        return
    with StoreLock(path):
        yield
