"""Runs a real kafkalite broker process for tests, on an ephemeral loopback port."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

_LISTENING = re.compile(r"listening on [^:]+:(\d+)")


class BrokerProcess:
    """A `python -m kafkalite` child process. Every test that starts one stops it."""

    def __init__(self, data_dir: str, *extra: str, port: int = 0):
        self.data_dir = data_dir
        self.extra = list(extra)
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.output: list[str] = []

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "BrokerProcess":
        # After the first start the port is kept, so clients reconnect to the same address.
        cmd = [sys.executable, "-m", "kafkalite", "--listen", f"127.0.0.1:{self.port}",
               "--data-dir", self.data_dir, *self.extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        found = threading.Event()

        def pump(proc: subprocess.Popen) -> None:
            for line in proc.stdout:
                self.output.append(line)
                match = _LISTENING.search(line)
                if match and not found.is_set():
                    self.port = int(match.group(1))
                    found.set()

        threading.Thread(target=pump, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("broker did not start:\n" + "".join(self.output[-50:]))
        return self

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait: a clean shutdown."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError("broker did not stop on SIGTERM:\n" + "".join(self.output[-50:]))

    def kill(self) -> None:
        """kill -9: an unclean stop."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self, clean: bool = True) -> "BrokerProcess":
        if clean:
            self.stop()
        else:
            self.kill()
        return self.start()


def require_tool(name: str) -> str:
    """The path of an interop client's executable: skip without it on a laptop, fail in CI."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed")
    return path


def missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI installs every interop client, so this is a failure")
    pytest.skip(reason)
