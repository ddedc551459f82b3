"""Process locks for SQLite: the liveness signal the operating system guarantees.

Each bridge process holds an exclusive `flock` on its own file in a directory beside the
database (`bridge.db-owners/<instance id>.lock`). The kernel drops the lock the moment
the process ends — SIGKILL, out of memory, a crash — so another process that can take
the lock knows at once that the owner is gone; no heartbeat has to go silent first.

`flock` locks belong to an open file description, not to the process: a process that
opens the file a second time conflicts with its own lock (tests run several "processes"
in one), and closing that second descriptor leaves the first lock alone (unlike POSIX
`fcntl` record locks, which any close in the process releases). `flock` is reliable on
local file systems; SQLite on a network file system is unsupported anyway.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from collections.abc import Collection
from pathlib import Path

from bridge.errors import StoreError

OWNERS_DIRECTORY_SUFFIX = "-owners"  # beside SQLite's own -wal and -shm files
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.-]{1,100}")


class FileLocks:
    """The locks of the processes using one SQLite file."""

    def __init__(self, database_path: str) -> None:
        self._directory = Path(os.path.abspath(database_path + OWNERS_DIRECTORY_SUFFIX))
        self._held: dict[str, int] = {}

    def hold(self, owner: str) -> None:
        """Take `owner`'s lock for as long as this process lives (or until `release`),
        and remove the files of processes that are gone.

        The lock is taken on a new file that is then renamed into place, so a `.lock`
        file is locked from the moment it exists: a check can never take (and remove)
        the lock of a process that is still starting.

        Raises:
            StoreError: the directory is not writable, or the lock is taken (another live
                process with the same instance id).
        """
        if owner in self._held:
            return
        path = self._path(owner)
        taking = path.with_suffix(".taking")
        try:
            self._directory.mkdir(exist_ok=True)
            fd = os.open(taking, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot create the process lock {path}: {exc.strerror}") from exc
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a file nobody else has opened
        if _is_held(path):
            taking.unlink(missing_ok=True)
            os.close(fd)
            raise StoreError(f"the process lock {path} is held by another process")
        os.rename(taking, path)
        self._held[owner] = fd
        for other in self._directory.glob("*.lock"):
            if other != path:
                _is_held(other)  # a free lock's file is removed

    def release(self, owner: str) -> None:
        """Give up `owner`'s lock (clean stop) and remove its file."""
        fd = self._held.pop(owner, None)
        if fd is None:
            return
        self._path(owner).unlink(missing_ok=True)
        os.close(fd)

    def live(self, owners: Collection[str]) -> set[str]:
        """Which of `owners` hold their lock now. A lock found free belonged to a process
        that is gone; its file is removed."""
        return {owner for owner in owners if owner in self._held or _is_held(self._path(owner))}

    def close(self) -> None:
        for owner in list(self._held):
            self.release(owner)

    def _path(self, owner: str) -> Path:
        name = owner if _PLAIN_ID.fullmatch(owner) else hashlib.sha256(owner.encode()).hexdigest()
        return self._directory / f"{name}.lock"


class LocalLocks:
    """The locks for a private in-memory database: only this process can see it, so
    its owners are alive exactly while they hold their lock here."""

    def __init__(self) -> None:
        self._held: set[str] = set()

    def hold(self, owner: str) -> None:
        self._held.add(owner)

    def release(self, owner: str) -> None:
        self._held.discard(owner)

    def live(self, owners: Collection[str]) -> set[str]:
        return self._held & set(owners)

    def close(self) -> None:
        self._held.clear()


def _is_held(path: Path) -> bool:
    """Whether a process holds the lock on `path`. A lock found free belonged to a
    process that is gone: its file is removed."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False  # released by a clean stop, or removed by an earlier check
    except OSError:
        return True  # cannot tell: never touch answers of a process that may live
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return True
    path.unlink(missing_ok=True)
    os.close(fd)
    return False
