"""A real etcd (Debian's etcd-server) on loopback for tests: one member, or a cluster of several."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

from brokerproc import missing


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EtcdProcess:
    """One etcd member, stopped by its pid."""

    def __init__(self, data_dir: str, name: str = "etcd0", host: str = "127.0.0.1"):
        self.data_dir, self.name, self.host = data_dir, name, host
        self.client_port, self.peer_port = free_port(host), free_port(host)
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.client_port}"

    def start(self, timeout: float = 20.0) -> "EtcdProcess":
        binary = shutil.which("etcd") or missing("etcd is not installed (Debian package etcd-server)")
        peer = f"http://{self.host}:{self.peer_port}"
        client = f"http://{self.host}:{self.client_port}"
        self.proc = subprocess.Popen(
            [binary, "--name", self.name, "--data-dir", self.data_dir, "--listen-client-urls", client,
             "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"{self.name}={peer}", "--initial-cluster-state", "new",
             "--heartbeat-interval", "50", "--election-timeout", "500"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited: {self.proc.stderr.read()[-2000:]}")
            try:
                socket.create_connection((self.host, self.client_port), timeout=0.2).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("etcd did not start listening")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
