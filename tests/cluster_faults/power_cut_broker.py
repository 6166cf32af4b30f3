"""Runs a kafkalite broker exactly as `python -m kafkalite` does, with the log's file seam (kafkalite/log/fs.py)
wrapped so that another process can later "cut its power": kill -9 it, then drop every write it had not fsynced.

    python tests/cluster_faults/power_cut_broker.py --durable-mirror DIR [any `python -m kafkalite` argument ...]

The wrapper keeps, in DIR, a mirror of the data dir holding what a disk would still have after a power cut:
each file's contents as of its last fsync. A write lands in the data dir only; an fsync copies the bytes
written since the previous one (from the lowest offset touched) into the mirror and cuts the mirror copy to the
file's size. Creating, renaming and removing a file act on the mirror at once (a journalling file system
persists directory entries soon; a file created and never fsynced comes back empty, as on ext4). Files the seam
never opened (the .lock file, a config file) are not mirrored and survive as they are.

`drop_unsynced(data_dir, mirror)` is the power cut's second half, run by the harness once the process is dead:
every mirrored file is written back over its data-dir copy. The broker's own code is untouched: this module
replaces methods of kafkalite.log.fs.FileSystem in this process only (every `FileSystem()` the broker builds,
the log's, the producer-id block's and the cluster-id file's, is that class).
"""

from __future__ import annotations

import os
import shutil
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

COPY_CHUNK = 1 << 20


class _Mirrored:
    """The mirror of one file (shared by every handle open on it): where its durable copy is and the lowest
    offset written since its last fsync (None: nothing)."""

    __slots__ = ("mirror_path", "dirty_from", "lock")

    def __init__(self, mirror_path: str):
        self.mirror_path = mirror_path
        self.dirty_from: int | None = None
        self.lock = threading.Lock()

    def touched(self, offset: int) -> None:
        with self.lock:
            self.dirty_from = offset if self.dirty_from is None else min(self.dirty_from, offset)


class Mirror:
    def __init__(self, data_dir: str, mirror_dir: str):
        self.data_dir = os.path.realpath(data_dir)
        self.mirror_dir = mirror_dir
        self.files: dict[str, _Mirrored] = {}
        self.lock = threading.Lock()

    def mirror_path(self, path: str) -> str | None:
        real = os.path.realpath(path)
        if real != self.data_dir and not real.startswith(self.data_dir + os.sep):
            return None
        return os.path.join(self.mirror_dir, os.path.relpath(real, self.data_dir))

    def opened(self, path: str, existed: bool) -> _Mirrored | None:
        mirror_path = self.mirror_path(path)
        if mirror_path is None:
            return None
        key = os.path.realpath(path)
        with self.lock:
            entry = self.files.get(key)
            if entry is None:
                entry = self.files[key] = _Mirrored(mirror_path)
                if not os.path.exists(mirror_path):
                    os.makedirs(os.path.dirname(mirror_path), exist_ok=True)
                    if existed:  # on disk before this run (written by a run that ended): durable as it is
                        shutil.copyfile(path, mirror_path)
                    else:  # a new directory entry, contents not yet durable
                        open(mirror_path, "wb").close()
            return entry

    def synced(self, entry: _Mirrored, fd: int) -> None:
        """After an fsync of `fd`: what was written from entry.dirty_from up to the current size is durable.

        The copy holds the file's lock, which a truncation takes too: a truncation (and its own fsync) that ran
        while an earlier fsync's copy was under way left the mirror longer than the file, zeros where batches
        had been, once the stale copy set the mirror's size back to what it had read before the cut (a disk
        cannot do that: the truncation's fsync made the shorter size durable)."""
        with entry.lock:
            start, entry.dirty_from = entry.dirty_from, None
            size = os.fstat(fd).st_size
            out = os.open(entry.mirror_path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                if start is not None:
                    offset = min(start, size)
                    while offset < size:
                        chunk = os.pread(fd, min(COPY_CHUNK, size - offset), offset)
                        if not chunk:
                            break
                        os.pwrite(out, chunk, offset)
                        offset += len(chunk)
                os.ftruncate(out, size)
            finally:
                os.close(out)

    def renamed(self, src: str, dst: str) -> None:
        src_m, dst_m = self.mirror_path(src), self.mirror_path(dst)
        if src_m is None or dst_m is None:
            return
        with self.lock:
            src_key, dst_key = os.path.realpath(src), os.path.realpath(dst)
            prefix = src_key + os.sep
            for key in [k for k in self.files if k == src_key or k.startswith(prefix)]:
                entry = self.files.pop(key)
                entry.mirror_path = dst_m + entry.mirror_path[len(src_m):]
                self.files[dst_key + key[len(src_key):]] = entry
            if os.path.lexists(src_m):
                os.makedirs(os.path.dirname(dst_m), exist_ok=True)
                if os.path.isdir(dst_m) and not os.path.isdir(src_m):
                    shutil.rmtree(dst_m)
                os.replace(src_m, dst_m)

    def removed(self, path: str) -> None:
        mirror_path = self.mirror_path(path)
        if mirror_path is None:
            return
        with self.lock:
            key = os.path.realpath(path)
            for k in [k for k in self.files if k == key or k.startswith(key + os.sep)]:
                del self.files[k]
            if os.path.isdir(mirror_path):
                shutil.rmtree(mirror_path)
            elif os.path.lexists(mirror_path):
                os.remove(mirror_path)

    def made_dir(self, path: str) -> None:
        mirror_path = self.mirror_path(path)
        if mirror_path is not None:
            os.makedirs(mirror_path, exist_ok=True)


def install(data_dir: str, mirror_dir: str) -> Mirror:
    """Wrap kafkalite.log.fs.FileSystem (and its files) in this process so every fsync updates the mirror."""
    from kafkalite.log import fs as fs_mod

    mirror = Mirror(data_dir, mirror_dir)
    os.makedirs(mirror_dir, exist_ok=True)
    base = fs_mod.FileSystem
    original = {name: getattr(base, name) for name in ("open", "makedirs", "remove", "rmtree", "rename")}

    class MirroredFile(fs_mod.File):
        def __init__(self, inner, entry: _Mirrored):
            self.inner, self.entry = inner, entry

        def pread(self, size, offset):
            return self.inner.pread(size, offset)

        def pwrite(self, data, offset):
            self.inner.pwrite(data, offset)
            self.entry.touched(offset)

        def truncate(self, size):
            with self.entry.lock:  # not while an fsync's copy runs (see Mirror.synced)
                self.inner.truncate(size)
                self.entry.dirty_from = size if self.entry.dirty_from is None else min(self.entry.dirty_from, size)

        def fsync(self):
            self.inner.fsync()
            mirror.synced(self.entry, self.inner.fileno())

        def size(self):
            return self.inner.size()

        def fileno(self):
            return self.inner.fileno()

        def close(self):
            return self.inner.close()

    def open_(self, path, create=False):
        existed = os.path.exists(path)
        inner = original["open"](self, path, create)
        entry = mirror.opened(path, existed)
        return inner if entry is None else MirroredFile(inner, entry)

    def makedirs(self, path):
        original["makedirs"](self, path)
        mirror.made_dir(path)

    def remove(self, path):
        original["remove"](self, path)
        mirror.removed(path)

    def rmtree(self, path):
        original["rmtree"](self, path)
        mirror.removed(path)

    def rename(self, src, dst):
        original["rename"](self, src, dst)
        mirror.renamed(src, dst)

    base.open, base.makedirs, base.remove, base.rmtree, base.rename = open_, makedirs, remove, rmtree, rename
    _installed.append(original)
    return mirror


_installed: list[dict] = []  # the FileSystem methods install() replaced, for uninstall()


def uninstall() -> None:
    """Put back the FileSystem methods the last install() replaced (tests that install in their own process)."""
    from kafkalite.log import fs as fs_mod

    for name, method in _installed.pop().items():
        setattr(fs_mod.FileSystem, name, method)


def drop_unsynced(data_dir: str, mirror_dir: str) -> dict:
    """The power cut, once the broker is dead: every mirrored file gets its durable contents back. Returns
    {"files": how many were set back, "bytes_dropped": how many bytes were lost in all}."""
    changed, dropped = 0, 0
    if not os.path.isdir(mirror_dir):
        return {"files": 0, "bytes_dropped": 0}
    for folder, _, names in os.walk(mirror_dir):
        for name in names:
            durable = os.path.join(folder, name)
            target = os.path.join(data_dir, os.path.relpath(durable, mirror_dir))
            size = os.path.getsize(target) if os.path.exists(target) else 0
            with open(durable, "rb") as f:
                data = f.read()
            current = b""
            if os.path.exists(target):
                with open(target, "rb") as f:
                    current = f.read()
            if current != data:
                changed += 1
                dropped += max(0, size - len(data))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as f:
                    f.write(data)
    return {"files": changed, "bytes_dropped": dropped}


def main(argv: list[str]) -> int:
    if "--durable-mirror" not in argv or "--data-dir" not in argv:
        print("usage: power_cut_broker.py --durable-mirror DIR --data-dir DIR [kafkalite arguments]", file=sys.stderr)
        return 2
    i = argv.index("--durable-mirror")
    mirror_dir = argv[i + 1]
    rest = argv[:i] + argv[i + 2:]
    data_dir = rest[rest.index("--data-dir") + 1]
    os.makedirs(data_dir, exist_ok=True)
    install(data_dir, mirror_dir)
    from kafkalite.cli import main as kafkalite_main

    return kafkalite_main(rest, serve_when_bare=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
