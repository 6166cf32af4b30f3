"""The data dir's lock: one broker per data dir.

Two brokers writing the same logs would hand out the same offsets twice and overwrite acknowledged records. As
Kafka does with its `.lock` file, the broker takes an exclusive flock on `<data dir>/.lock` before it opens
anything and holds it until it stops. The kernel releases a flock when its holder dies, kill -9 included, so a
crash never leaves a stale lock behind. The holder's pid is written into the file, for the refusal message only.

flock (not fcntl/lockf) because its locks belong to the open file, not the process: two brokers in one process
(kafkalite.testing) exclude each other too.
"""

from __future__ import annotations

import fcntl
import os

LOCK_FILE = ".lock"


class DataDirError(Exception):
    """The data dir cannot be used: a one-line reason for the operator."""


class DataDirLock:
    """The exclusive lock on a data dir, created if missing. `release()` (or leaving the `with`) gives it up."""

    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.path = os.path.join(data_dir, LOCK_FILE)
        self._fd: int | None = None

    def acquire(self) -> "DataDirLock":
        if os.path.exists(self.data_dir) and not os.path.isdir(self.data_dir):
            raise DataDirError(f"data dir {self.data_dir} is not a directory")
        try:
            os.makedirs(self.data_dir, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise DataDirError(f"cannot open data dir {self.data_dir}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            by = f"kafkalite pid {holder}" if holder else "another kafkalite"
            raise DataDirError(
                f"data dir {self.data_dir} is in use by {by} (it holds {self.path}); "
                "stop that broker or choose another --data-dir"
            ) from None
        except OSError as e:
            os.close(fd)
            raise DataDirError(f"cannot lock data dir {self.data_dir}: {e.strerror}") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the pid is only a courtesy for the next broker's message; the lock is what counts
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "DataDirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
