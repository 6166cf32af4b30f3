"""Runs the kafkalite broker exactly as `python -m kafkalite serve` does, with the log's file seam
(kafkalite/log/fs.py) replaced by one whose faults another process switches on and off.

    python scripts/torture_broker.py --fault-file PATH [any `kafkalite serve` flag ...]

While PATH exists and holds `<ERRNO-NAME> <op>,<op>,...` (e.g. `EIO write,fsync`, `EROFS *`), each
matching file operation of the log store fails with that errno; remove the file to clear the fault.
Ops: open (create), write, truncate, fsync, rename, remove, mkdir, or * for all of them. Reads never
fail: the harness checks what the broker serves. The file is checked at most every 20 ms.
Used by scripts/torture.py (R5) only; the broker itself has no fault hooks.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from kafkalite.config import add_serve_arguments, load_config  # noqa: E402
from kafkalite.log import fs as fs_mod  # noqa: E402
from kafkalite.log import manager as manager_mod  # noqa: E402


class _Switch:
    def __init__(self, path: str):
        self.path = path
        self.checked = 0.0
        self.fault: tuple[int, set[str]] | None = None

    def current(self) -> tuple[int, set[str]] | None:
        now = time.monotonic()
        if now - self.checked >= 0.02:
            self.checked = now
            try:
                with open(self.path) as f:
                    name, _, ops = f.read().strip().partition(" ")
                self.fault = (getattr(errno, name), set((ops or "*").split(",")))
            except (FileNotFoundError, AttributeError, ValueError):
                self.fault = None
        return self.fault

    def check(self, op: str, path: str) -> None:
        fault = self.current()
        if fault is not None and ("*" in fault[1] or op in fault[1]):
            raise OSError(fault[0], os.strerror(fault[0]), path)


class _SwitchedFile(fs_mod.File):
    def __init__(self, inner: fs_mod.File, switch: _Switch, path: str):
        self.inner, self.switch, self.path = inner, switch, path

    def pread(self, size, offset):
        return self.inner.pread(size, offset)

    def pwrite(self, data, offset):
        self.switch.check("write", self.path)
        return self.inner.pwrite(data, offset)

    def truncate(self, size):
        self.switch.check("truncate", self.path)
        return self.inner.truncate(size)

    def fsync(self):
        self.switch.check("fsync", self.path)
        return self.inner.fsync()

    def size(self):
        return self.inner.size()

    def fileno(self):
        return self.inner.fileno()

    def close(self):
        return self.inner.close()


def switched_file_system(control: str) -> type:
    switch = _Switch(control)

    class SwitchedFileSystem(fs_mod.FileSystem):
        def open(self, path, create=False):
            if create and not os.path.exists(path):
                switch.check("open", path)
            return _SwitchedFile(super().open(path, create), switch, path)

        def makedirs(self, path):
            if not os.path.isdir(path):
                switch.check("mkdir", path)
            return super().makedirs(path)

        def remove(self, path):
            switch.check("remove", path)
            return super().remove(path)

        def rmtree(self, path):
            switch.check("remove", path)
            return super().rmtree(path)

        def rename(self, src, dst):
            switch.check("rename", dst)
            return super().rename(src, dst)

        def fsync_dir(self, path):
            switch.check("fsync", path)
            return super().fsync_dir(path)

    return SwitchedFileSystem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault-file", help="the control file (see the module docstring)")
    add_serve_arguments(parser)
    args = parser.parse_args()
    config = load_config(args)
    if args.fault_file:
        # LogManager builds its FileSystem() from this module-level name when given none.
        manager_mod.FileSystem = switched_file_system(args.fault_file)
    from kafkalite.server import run

    run(config)


if __name__ == "__main__":
    main()
