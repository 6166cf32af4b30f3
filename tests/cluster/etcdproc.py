"""A real etcd (Debian's etcd-server) on loopback for tests: one member, or a cluster of several."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request

from brokerproc import missing


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EtcdProcess:
    """One etcd member, stopped by its pid. Alone, it is a cluster of one; `peers` (every member, itself
    included) makes it one member of a cluster started with --initial-cluster."""

    def __init__(self, data_dir: str, name: str = "etcd0", host: str = "127.0.0.1"):
        self.data_dir, self.name, self.host = data_dir, name, host
        self.client_port, self.peer_port = free_port(host), free_port(host)
        self.proc: subprocess.Popen | None = None
        self.peers: list[EtcdProcess] = [self]

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def launch(self) -> None:
        """Start the process without waiting: the members of a new cluster wait for each other."""
        binary = shutil.which("etcd") or missing("etcd is not installed (Debian package etcd-server)")
        client = f"http://{self.host}:{self.client_port}"
        self.proc = subprocess.Popen(
            [binary, "--name", self.name, "--data-dir", self.data_dir, "--listen-client-urls", client,
             "--advertise-client-urls", client, "--listen-peer-urls", self.peer_url,
             "--initial-advertise-peer-urls", self.peer_url,
             "--initial-cluster", ",".join(f"{p.name}={p.peer_url}" for p in self.peers),
             "--initial-cluster-state", "new", "--initial-cluster-token", "-".join(p.name for p in self.peers),
             "--heartbeat-interval", "50", "--election-timeout", "500"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )

    def wait_listening(self, timeout: float = 20.0) -> "EtcdProcess":
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

    def start(self, timeout: float = 20.0) -> "EtcdProcess":
        self.launch()
        return self.wait_listening(timeout)

    def is_leader(self) -> bool:
        """Whether this member is the raft leader now (etcd's etcd_server_is_leader metric)."""
        try:
            with urllib.request.urlopen(f"http://{self.endpoint}/metrics", timeout=2) as reply:
                text = reply.read().decode()
        except OSError:
            return False
        return any(line.split() == ["etcd_server_is_leader", "1"] for line in text.splitlines())

    def kill(self) -> None:
        """kill -9."""
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class EtcdCluster:
    """N etcd members on loopback, one host each (`hosts`), made with --initial-cluster. `endpoint` is every
    member's HOST:PORT, comma separated, as --cluster etcd://H1:P1,H2:P2,.../NAME takes them."""

    def __init__(self, data_dir: str, hosts: list[str]):
        self.members = [EtcdProcess(os.path.join(data_dir, f"etcd{i}"), name=f"etcd{i}", host=host)
                        for i, host in enumerate(hosts)]
        for member in self.members:
            member.peers = self.members

    @property
    def endpoint(self) -> str:
        return ",".join(m.endpoint for m in self.members)

    @property
    def hosts(self) -> list[str]:
        return [m.host for m in self.members]

    def running(self) -> bool:
        return all(m.alive() for m in self.members)

    def start(self, timeout: float = 30.0) -> "EtcdCluster":
        """Start every member that is not running, then wait until they listen and one of them leads."""
        down = [m for m in self.members if not m.alive()]
        for member in down:
            member.launch()
        for member in down:
            member.wait_listening(timeout)
        self.wait_leader(timeout)
        return self

    def leader(self) -> EtcdProcess | None:
        return next((m for m in self.members if m.alive() and m.is_leader()), None)

    def wait_leader(self, timeout: float = 30.0) -> EtcdProcess:
        deadline = time.monotonic() + timeout
        while True:
            leader = self.leader()
            if leader is not None:
                return leader
            if time.monotonic() > deadline:
                raise RuntimeError("no etcd member became leader")
            time.sleep(0.1)

    def stop(self) -> None:
        for member in self.members:
            member.stop()
