"""A kafkalite cluster for tests: etcd and N broker processes on loopback, each stopped by its pid."""

from __future__ import annotations

import os
import time

from brokerproc import BrokerProcess
from etcdproc import EtcdProcess

TEST_SETTINGS = {
    "broker.session.timeout.ms": 3000,  # CLUSTER.md's test TTL
    "replica.lag.time.max.ms": 4000,
    "min.insync.replicas": 2,
    "offsets.topic.num.partitions": 6,
    "group.initial.rebalance.delay.ms": 0,
    "default.replication.factor": 3,  # topics clients create are replicated too
}


class Cluster:
    def __init__(self, workdir: str, brokers: int = 3, name: str = "test", **settings):
        self.workdir = workdir
        self.etcd = EtcdProcess(os.path.join(workdir, "etcd"))
        self.name = name
        self.settings = {**TEST_SETTINGS, **{k.replace("_", "."): v for k, v in settings.items()}}
        self.brokers: dict[int, BrokerProcess] = {}
        self.count = brokers

    def start(self) -> "Cluster":
        self.etcd.start()
        try:
            for node in range(1, self.count + 1):
                self.add_broker(node)
        except Exception:
            self.stop()
            raise
        return self

    def add_broker(self, node: int) -> BrokerProcess:
        extra = ["--node-id", str(node), "--cluster", f"etcd://{self.etcd.endpoint}/{self.name}"]
        for key, value in self.settings.items():
            extra += ["--set", f"{key}={value}"]
        broker = BrokerProcess(os.path.join(self.workdir, f"broker-{node}"), *extra)
        self.brokers[node] = broker
        return broker.start()

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers.values() if b.proc and b.proc.poll() is None)

    def stop(self) -> None:
        for node, broker in self.brokers.items():
            broker.kill()
            with open(os.path.join(self.workdir, f"broker-{node}.out"), "w") as f:  # kept for a failure's post-mortem
                f.write(self.output(node))
        self.etcd.stop()

    def output(self, node: int) -> str:
        return "".join(self.brokers[node].output)


def wait_until(condition, timeout: float, what: str, interval: float = 0.1, error: type = AssertionError):
    """Poll `condition` until it returns something truthy, for at most `timeout` seconds (then `error`)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
