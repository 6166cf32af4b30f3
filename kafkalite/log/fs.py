"""The file seam: every byte the log store reads or writes goes through a FileSystem.

`FileSystem` is the real one (thin wrappers over os.open/pread/pwrite/ftruncate/fdatasync/rename). Tests swap in
fs_faulty.FaultyFileSystem, an in-memory stand-in that models power cuts and injects faults.

Errors are plain OSError; the log turns them into StorageError.
"""

from __future__ import annotations

import os
import shutil


class File:
    """An open read-write file. Positions are explicit (pread/pwrite), so there is no shared file cursor."""

    def pread(self, size: int, offset: int) -> bytes:
        """Up to `size` bytes from `offset` (fewer only at the end of the file)."""
        raise NotImplementedError

    def pwrite(self, data, offset: int) -> None:
        """Write all of `data` at `offset` (loops over short writes)."""
        raise NotImplementedError

    def truncate(self, size: int) -> None:
        raise NotImplementedError

    def fsync(self) -> None:
        """Make the contents durable (fdatasync where available: the size is part of what it flushes)."""
        raise NotImplementedError

    def size(self) -> int:
        raise NotImplementedError

    def fileno(self) -> int | None:
        """The OS file descriptor, for sendfile; None when the file is not a real one."""
        return None

    def close(self) -> None:
        raise NotImplementedError


class FileSystem:
    """The real file system. Methods raise OSError as the os module does."""

    def open(self, path: str, create: bool = False) -> File:
        """Open read-write; with create=True a missing file is created empty."""
        flags = os.O_RDWR | (os.O_CREAT if create else 0) | getattr(os, "O_CLOEXEC", 0)
        return _OsFile(os.open(path, flags, 0o644))

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def remove(self, path: str) -> None:
        os.remove(path)

    def rmtree(self, path: str) -> None:
        shutil.rmtree(path)

    def rename(self, src: str, dst: str) -> None:
        """Atomic rename, replacing dst if it exists. Durable only after fsync_dir of both parents."""
        os.replace(src, dst)

    def fsync_dir(self, path: str) -> None:
        """Make the directory's entries (creations, renames, removals) durable."""
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def file_size(self, path: str) -> int:
        return os.stat(path).st_size

    # Helpers built on the primitives above (FaultyFileSystem inherits them, so they see its faults too).

    def read_file(self, path: str) -> bytes:
        f = self.open(path)
        try:
            return f.pread(f.size(), 0)
        finally:
            f.close()

    def write_file_atomic(self, path: str, data: bytes) -> None:
        """Replace `path` with `data` all or nothing, durably: write `path`.tmp, fsync it, rename it over `path`,
        fsync the directory. After a crash the file holds the old or the new contents, never a mix, and once this
        returns a power cut cannot bring the old contents back. A leftover `path`.tmp is garbage (the log
        deletes *.tmp on open). For small files: checkpoints, snapshots, JSON documents."""
        tmp = path + ".tmp"
        f = self.open(tmp, create=True)
        try:
            f.truncate(0)
            f.pwrite(data, 0)
            f.fsync()
        finally:
            f.close()
        self.rename(tmp, path)
        self.fsync_dir(os.path.dirname(path) or ".")


class _OsFile(File):
    __slots__ = ("fd",)

    def __init__(self, fd: int):
        self.fd = fd

    def pread(self, size: int, offset: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def pwrite(self, data, offset: int) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, offset)
            view = view[n:]
            offset += n

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)

    def fsync(self) -> None:
        _fdatasync(self.fd)

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


_fdatasync = getattr(os, "fdatasync", os.fsync)
