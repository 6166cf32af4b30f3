"""FaultyFileSystem: an in-memory FileSystem for tests that models power cuts and injects faults.

It models what a power cut does: file contents revert to what was last fsynced, directory entries (created,
renamed, removed files) revert to what was there at the last fsync of their directory. It can also fail any
operation with an errno (EIO, ENOSPC, EROFS), tear a write in half, flip bits, and "crash" at the N-th mutating
operation. Used by the log's own tests and the broker's fault tests; production code never imports it.

A simulated crash raises SimulatedCrash, which is deliberately not an OSError so that no error handling in the
log can swallow it.
"""

from __future__ import annotations

import errno as errno_mod
import os
import random
import threading
from dataclasses import dataclass

from kafkalite.log.fs import File, FileSystem


class SimulatedCrash(Exception):
    """Raised by FaultyFileSystem when an armed crash point is reached, and by every call after it until restart()."""


MUTATING_OPS = ("create", "write", "truncate", "fsync", "fsync_dir", "rename", "remove", "mkdir")
ALL_OPS = MUTATING_OPS + ("open", "read")


@dataclass
class _Fault:
    op: str  # one of ALL_OPS
    errno: int
    path_contains: str | None
    remaining: int | None  # None: until clear_faults()
    torn: bool  # for "write": write the first half before failing


class _Inode:
    __slots__ = ("data", "durable")

    def __init__(self):
        self.data = bytearray()  # what the OS shows
        self.durable = b""  # what survives a power cut: the contents at the last fsync


class FaultyFileSystem(FileSystem):
    """In-memory file system with power-cut semantics and fault injection. Thread-safe (one lock).

    Crash model, applied by restart(lose_unsynced=...):
      - "all" (default, a power cut): every file reverts to its contents at its last fsync; every directory's
        entries revert to their state at the directory's last fsync_dir. Directories themselves are durable.
      - "none" (a process kill -9): nothing is lost; only open handles die.
      - "some": like "all", but a file that was only appended to since its fsync keeps a random prefix of the
        appended bytes (what a disk that wrote some pages would show).
    Fault injection:
      - fail(op, errno, count=1, path_contains=None, torn=False): the next `count` matching ops raise OSError.
      - crash_after(n, torn=False): the (n+1)-th mutating op from now raises SimulatedCrash (a torn write first
        writes half of its data), and so does every op after it until restart().
      - flip_bit(path, byte, bit), and plain remove()/open()+pwrite() to damage files.
      - mutating_ops counts mutating operations, to enumerate crash points.
    """

    def __init__(self, seed: int = 0):
        self._lock = threading.RLock()
        self._files: dict[str, _Inode] = {}
        self._durable_files: dict[str, _Inode] = {}
        self._dirs: set[str] = {"/"}
        self._faults: list[_Fault] = []
        self._crash_countdown: int | None = None
        self._crash_torn = False
        self.crashed = False
        self.generation = 0  # bumped by restart(); handles of older generations are dead
        self.mutating_ops = 0
        self.rng = random.Random(seed)

    # -- fault control --------------------------------------------------------------------------------------

    def fail(self, op: str, errno: int = errno_mod.EIO, count: int | None = 1,
             path_contains: str | None = None, torn: bool = False) -> None:
        if op not in ALL_OPS:
            raise ValueError(f"unknown op {op!r}; one of {ALL_OPS}")
        with self._lock:
            self._faults.append(_Fault(op, errno, path_contains, count, torn))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._crash_countdown = None

    def crash_after(self, n: int, torn: bool = False) -> None:
        with self._lock:
            self._crash_countdown = n
            self._crash_torn = torn

    def restart(self, lose_unsynced: str = "all") -> None:
        """End the simulated crash (or simulate one now) and apply the loss model; all open handles die."""
        if lose_unsynced not in ("all", "none", "some"):
            raise ValueError("lose_unsynced is 'all', 'none' or 'some'")
        with self._lock:
            self.crashed = False
            self._crash_countdown = None
            self._faults.clear()
            self.generation += 1
            if lose_unsynced == "none":
                return
            self._files = dict(self._durable_files)
            seen: set[int] = set()
            for _, inode in sorted(self._files.items()):  # sorted: the rng must be consumed reproducibly
                if id(inode) in seen:
                    continue
                seen.add(id(inode))
                durable = inode.durable
                if lose_unsynced == "some" and len(inode.data) > len(durable) and inode.data.startswith(durable):
                    keep = self.rng.randint(len(durable), len(inode.data))
                    del inode.data[keep:]
                    inode.durable = bytes(inode.data)
                else:
                    inode.data = bytearray(durable)

    def clone(self) -> "FaultyFileSystem":
        """An independent copy of the current state (files, durable state, directories), without faults."""
        with self._lock:
            other = FaultyFileSystem()
            copies: dict[int, _Inode] = {}

            def copy(inode: _Inode) -> _Inode:
                if id(inode) not in copies:
                    c = copies[id(inode)] = _Inode()
                    c.data, c.durable = bytearray(inode.data), inode.durable
                return copies[id(inode)]

            other._files = {p: copy(i) for p, i in self._files.items()}
            other._durable_files = {p: copy(i) for p, i in self._durable_files.items()}
            other._dirs = set(self._dirs)
            return other

    def flip_bit(self, path: str, byte: int, bit: int = 0) -> None:
        """Corrupt a file in place, durably (as a bad sector would)."""
        with self._lock:
            inode = self._files[path]
            inode.data[byte] ^= 1 << bit
            if byte < len(inode.durable):
                d = bytearray(inode.durable)
                d[byte] ^= 1 << bit
                inode.durable = bytes(d)

    def durable_size(self, path: str) -> int:
        with self._lock:
            return len(self._durable_files[path].durable) if path in self._durable_files else -1

    def _check(self, op: str, path: str) -> _Fault | None:
        """Apply crash countdown and armed faults for one op. Returns a torn-write fault to apply, if any."""
        if self.crashed:
            raise SimulatedCrash("the file system has crashed; call restart()")
        if op in MUTATING_OPS:
            self.mutating_ops += 1
            if self._crash_countdown is not None:
                if self._crash_countdown == 0:
                    self.crashed = True
                    if op == "write" and self._crash_torn:
                        return _Fault(op, 0, None, 1, True)
                    raise SimulatedCrash(f"simulated crash at {op} {path}")
                self._crash_countdown -= 1
        for fault in self._faults:
            if fault.op == op and (fault.path_contains is None or fault.path_contains in path):
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                if fault.torn and op == "write":
                    return fault
                raise OSError(fault.errno, os.strerror(fault.errno), path)
        return None

    # -- FileSystem ----------------------------------------------------------------------------------------

    def open(self, path: str, create: bool = False) -> File:
        path = _norm(path)
        with self._lock:
            if path not in self._files:
                if not create:
                    self._check("open", path)
                    raise FileNotFoundError(errno_mod.ENOENT, "No such file", path)
                self._check("create", path)
                self._need_dir(os.path.dirname(path))
                self._files[path] = _Inode()
            else:
                self._check("open", path)
            return _MemFile(self, path, self._files[path])

    def exists(self, path: str) -> bool:
        path = _norm(path)
        with self._lock:
            return path in self._files or path in self._dirs

    def isdir(self, path: str) -> bool:
        with self._lock:
            return _norm(path) in self._dirs

    def listdir(self, path: str) -> list[str]:
        path = _norm(path)
        with self._lock:
            self._need_dir(path)
            names = {os.path.basename(p) for p in self._files if os.path.dirname(p) == path}
            names |= {os.path.basename(d) for d in self._dirs if d != path and os.path.dirname(d) == path}
            return sorted(names)

    def makedirs(self, path: str) -> None:
        path = _norm(path)
        with self._lock:
            if path in self._dirs:
                return
            self._check("mkdir", path)
            while path not in self._dirs:
                self._dirs.add(path)
                path = os.path.dirname(path)

    def remove(self, path: str) -> None:
        path = _norm(path)
        with self._lock:
            self._check("remove", path)
            if path not in self._files:
                raise FileNotFoundError(errno_mod.ENOENT, "No such file", path)
            del self._files[path]

    def rmtree(self, path: str) -> None:
        path = _norm(path)
        with self._lock:
            self._check("remove", path)
            prefix = path + "/"
            for p in [p for p in self._files if p.startswith(prefix)]:
                del self._files[p]
            # Removing a whole tree is taken to be durable at once (the log only does it to already-dead data).
            for p in [p for p in self._durable_files if p.startswith(prefix)]:
                del self._durable_files[p]
            self._dirs = {d for d in self._dirs if d != path and not d.startswith(prefix)}

    def rename(self, src: str, dst: str) -> None:
        src, dst = _norm(src), _norm(dst)
        with self._lock:
            self._check("rename", dst)
            if src in self._dirs:  # directory rename: durable at once, like rmtree
                if dst in self._dirs or dst in self._files:
                    raise OSError(errno_mod.EEXIST, "exists", dst)
                for table in (self._files, self._durable_files):
                    for p in [p for p in table if p.startswith(src + "/")]:
                        table[dst + p[len(src):]] = table.pop(p)
                self._dirs = {dst + d[len(src):] if d == src or d.startswith(src + "/") else d for d in self._dirs}
                return
            if src not in self._files:
                raise FileNotFoundError(errno_mod.ENOENT, "No such file", src)
            self._need_dir(os.path.dirname(dst))
            self._files[dst] = self._files.pop(src)

    def fsync_dir(self, path: str) -> None:
        path = _norm(path)
        with self._lock:
            self._check("fsync_dir", path)
            self._need_dir(path)
            for p in [p for p in self._durable_files if os.path.dirname(p) == path]:
                del self._durable_files[p]
            for p, inode in self._files.items():
                if os.path.dirname(p) == path:
                    self._durable_files[p] = inode

    def file_size(self, path: str) -> int:
        path = _norm(path)
        with self._lock:
            if path not in self._files:
                raise FileNotFoundError(errno_mod.ENOENT, "No such file", path)
            return len(self._files[path].data)

    def _need_dir(self, path: str) -> None:
        if path not in self._dirs:
            raise FileNotFoundError(errno_mod.ENOENT, "No such directory", path)


class _MemFile(File):
    def __init__(self, fs: FaultyFileSystem, path: str, inode: _Inode):
        self.fs = fs
        self.path = path
        self.inode = inode
        self.generation = fs.generation
        self.closed = False

    def _alive(self, op: str) -> _Fault | None:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        fault = self.fs._check(op, self.path)
        if self.generation != self.fs.generation:
            raise OSError(errno_mod.EBADF, "handle from before a simulated crash", self.path)
        return fault

    def pread(self, size: int, offset: int) -> bytes:
        with self.fs._lock:
            self._alive("read")
            return bytes(self.inode.data[offset:offset + size])

    def pwrite(self, data, offset: int) -> None:
        with self.fs._lock:
            fault = self._alive("write")
            data = bytes(data)
            if fault is not None:  # torn: half the bytes land, then the failure
                data = data[: len(data) // 2]
            d = self.inode.data
            if offset > len(d):
                d.extend(bytes(offset - len(d)))
            d[offset:offset + len(data)] = data
            if fault is not None:
                if fault.errno:
                    raise OSError(fault.errno, os.strerror(fault.errno), self.path)
                raise SimulatedCrash(f"simulated crash tearing a write to {self.path}")

    def truncate(self, size: int) -> None:
        with self.fs._lock:
            self._alive("truncate")
            d = self.inode.data
            if size < len(d):
                del d[size:]
            else:
                d.extend(bytes(size - len(d)))

    def fsync(self) -> None:
        with self.fs._lock:
            self._alive("fsync")
            self.inode.durable = bytes(self.inode.data)

    def size(self) -> int:
        with self.fs._lock:
            if self.closed:
                raise ValueError("I/O operation on closed file")
            return len(self.inode.data)

    def close(self) -> None:
        self.closed = True


def _norm(path: str) -> str:
    return os.path.normpath(os.path.join("/", path))
