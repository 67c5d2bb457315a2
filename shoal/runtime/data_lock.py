"""One process per data directory: an exclusive lock on `<dir>/.lock` naming its holder.

Two processes on one data directory is never what anyone meant: a second
`shoal up` on a directory in use would find every RocksDB store locked and serve
no collections, and a user would think the data was gone. So `shoal up` locks
its root and every shard server its own data directory before anything starts,
and whoever comes second is refused with a message naming the holder.

The lock is `flock(2)` on the file, not the file's existence: the kernel drops
it when the holder's process ends however it ends (SIGKILL included), so a
crash never leaves a stale lock behind, and the file itself is never removed
(removing lock files races with whoever opens them next). The holder writes its
PID and what it is into the file, which is only read to name it in an error.
The `filelock` package is not used because it truncates the file on every
attempt, which would wipe the holder's name before anyone could read it.
"""

import errno
import fcntl
import json
import os
import time
from pathlib import Path
from types import TracebackType

LOCK_FILE = ".lock"


class DataDirInUse(RuntimeError):
    """Another process holds the directory's lock."""


def _describe_holder(text: str) -> str:
    """'process 1234 (shoal up, since 2026-01-02 10:11:12)' from the lock file's content."""
    try:
        holder = json.loads(text)
        pid = int(holder["pid"])
    except (ValueError, KeyError, TypeError):
        return "another process (it has not written its PID yet)"
    details = [str(holder["owner"])] if holder.get("owner") else []
    if holder.get("since"):
        details.append(f"since {holder['since']}")
    return f"process {pid}" + (f" ({', '.join(details)})" if details else "")


class DataDirLock:
    """Holds `<directory>/.lock` from `acquire` until `release` or this process ends."""

    def __init__(self, directory: Path, owner: str) -> None:
        """`owner` says what holds the lock ("shoal up", "shard"), for the error others see."""
        self.directory = directory
        self.owner = owner
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self.directory / LOCK_FILE

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock at once or raise DataDirInUse naming the holder; never waits."""
        if self._fd is not None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        # O_CLOEXEC: the processes we start must not inherit (and so keep holding) it.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = _describe_holder(self.path.read_text(errors="replace"))
            raise DataDirInUse(
                f"{self.directory} is in use by {holder}: stop that process first,"
                " or use another directory"
            ) from None
        record = {"pid": os.getpid(), "owner": self.owner, "since": time.strftime("%F %T")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Let the next process have the directory (closing the file drops the lock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "DataDirLock":
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
