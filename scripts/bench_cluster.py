"""Cluster benchmark: a three-broker kafkalite cluster (RF 3, min.insync.replicas 2, etcd) against one kafkalite
broker and a three-broker Apache Kafka cluster (KRaft, RF 3, min.insync.replicas 2), in the same run, taking turns.

Measures, with librdkafka (confluent-kafka), acks=all at 1 KiB: produce and consume throughput, produce p50/p99 and
end-to-end p99 at a fixed rate (bench.py's functions), and for the clusters the time from a kill -9 of a partition's
leader until that partition takes writes again (p50/p99 over --kills kills; the killed broker restarts and rejoins
the ISR between kills). Prints each figure and kafkalite-cluster's ratio to the others.

    python scripts/bench_cluster.py                      # all three, default sizes
    python scripts/bench_cluster.py --mb 20 --kills 5 --only kafkalite-cluster,kafkalite

Absolute figures on a shared 2-core machine are noise (three brokers share its two cores); read the ratios.
"server CPU ms/msg" (the CPU time the brokers, and etcd, used per message during the fixed-rate run) is the
figure least moved by other load: at a fixed rate the latency is mostly queueing for a core, so it tells how
much of the machine a message costs, and so how close a rate comes to saturating it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

import bench
from cluster import broker_command, etcd_command, wait_for_port
from bench import consume_throughput, free_port, median, percentile, produce_latency, produce_throughput

SIZE = 1024
PARTITIONS = bench.PARTITIONS
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time the processes have used so far (Linux /proc)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


class LiteCluster:
    """etcd and N kafkalite brokers (cluster mode), each a process stopped by its pid."""

    name = "kafkalite-cluster"
    replication = 3

    def __init__(self, n: int = 3):
        self.n = n
        self.dir = tempfile.mkdtemp(prefix="bench-cluster-")
        self.ports = [free_port() for _ in range(n)]
        self.etcd_port, self.peer_port = free_port(), free_port()
        self.procs: dict[int, subprocess.Popen] = {}
        self.etcd: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self) -> None:
        self.etcd = subprocess.Popen(etcd_command(os.path.join(self.dir, "etcd"), "127.0.0.1", self.etcd_port,
                                                  self.peer_port, name="e"),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port("127.0.0.1", self.etcd_port, self.etcd, "etcd")
        for node in range(1, self.n + 1):
            self.start_broker(node)

    def start_broker(self, node: int) -> None:
        port = self.ports[node - 1]
        self.procs[node] = subprocess.Popen(
            broker_command(node, "127.0.0.1", port, os.path.join(self.dir, f"b{node}"),
                           f"etcd://127.0.0.1:{self.etcd_port}/bench",
                           {"broker.session.timeout.ms": 3000, "min.insync.replicas": 2,
                            "replica.lag.time.max.ms": 10000}) + ["--log-level", "WARNING"])
        wait_for_port("127.0.0.1", port, self.procs[node], f"broker {node}", timeout=60)

    def server_pids(self) -> list[int]:
        return [p.pid for p in self.procs.values() if p.poll() is None] + [self.etcd.pid]

    def kill(self, node: int) -> None:
        self.procs[node].kill()
        self.procs[node].wait()

    def node_of(self, broker_id: int) -> int:
        return broker_id

    def restart(self, node: int) -> None:
        self.start_broker(node)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.etcd is not None:
            self.etcd.terminate()
            self.etcd.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class LiteSingle:
    name = "kafkalite"
    replication = 1

    def __init__(self):
        self.broker = bench.Kafkalite()

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def start(self) -> None:
        self.broker.start()

    def server_pids(self) -> list[int]:
        return [self.broker.proc.pid]

    def stop(self) -> None:
        self.broker.stop()


class KafkaThree:
    name = "kafka-cluster"
    replication = 3

    def __init__(self):
        from kafka_reference import SERVER_JVM_OPTS, KafkaCluster

        self.dir = tempfile.mkdtemp(prefix="bench-kafka-cluster-")
        self.cluster = KafkaCluster(self.dir, 3, heap="768m", jvm_opts=SERVER_JVM_OPTS,
                                    overrides={"min.insync.replicas": "2", "default.replication.factor": "3"})

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap

    def start(self) -> None:
        self.cluster.start()

    def server_pids(self) -> list[int]:
        return [b.pid for b in self.cluster.brokers if b.pid is not None]

    def node_of(self, broker_id: int) -> int:
        return broker_id + 1  # Kafka's nodes are 0..n-1; ours are numbered from 1 below

    def kill(self, node: int) -> None:
        self.cluster.brokers[node - 1].kill()

    def restart(self, node: int) -> None:
        self.cluster.brokers[node - 1].start()

    def stop(self) -> None:
        self.cluster.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def create_topic(target, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": target.bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, target.replication)])[topic].result(60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # every partition led and fully in sync
        parts = admin.list_topics(topic, timeout=10).topics[topic].partitions
        if len(parts) == PARTITIONS and all(p.leader >= 0 and len(p.isrs) == target.replication
                                            for p in parts.values()):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{topic} never got all its replicas in sync on {target.name}")


def failover_seconds(target, topic: str, kills: int) -> list[float]:
    """For each kill -9 of partition 0's leader under idempotent acks=all load: seconds until partition 0
    acknowledges a write again. The broker restarts and rejoins the ISR before the next kill."""
    admin = AdminClient({"bootstrap.servers": target.bootstrap})
    producer = Producer({"bootstrap.servers": target.bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 1, "message.timeout.ms": 60000})
    acked: list[float] = []
    stop = threading.Event()

    def delivered(err, msg):
        if err is None and msg.partition() == 0:
            acked.append(time.monotonic())

    def produce():
        while not stop.is_set():
            producer.produce(topic, value=b"x" * 100, partition=0, on_delivery=delivered)
            producer.poll(0)
            time.sleep(0.002)
        producer.flush(60)

    thread = threading.Thread(target=produce)
    thread.start()
    gaps = []
    try:
        for _ in range(kills):
            time.sleep(1)
            leader = admin.list_topics(topic, timeout=10).topics[topic].partitions[0].leader
            node = target.node_of(leader)
            killed = time.monotonic()
            target.kill(node)
            deadline = killed + 60
            while not any(t > killed + 0.01 for t in acked[-50:]) and time.monotonic() < deadline:
                time.sleep(0.01)
            gaps.append(next((t for t in acked[-200:] if t > killed + 0.01), deadline) - killed)
            target.restart(node)
            create_deadline = time.monotonic() + 60
            while time.monotonic() < create_deadline:
                parts = admin.list_topics(topic, timeout=10).topics[topic].partitions
                if all(len(p.isrs) == target.replication for p in parts.values()):
                    break
                time.sleep(0.2)
    finally:
        stop.set()
        thread.join(120)
    return gaps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=30, help="megabytes produced per round (default 30)")
    parser.add_argument("--rate", type=int, default=1000, help="messages/s for the latency run (default 1000)")
    parser.add_argument("--latency-seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kills", type=int, default=5, help="leader kills per cluster (default 5)")
    parser.add_argument("--only", default="kafkalite-cluster,kafkalite,kafka-cluster",
                        help="comma-separated: kafkalite-cluster, kafkalite, kafka-cluster")
    args = parser.parse_args()
    kinds = {"kafkalite-cluster": LiteCluster, "kafkalite": LiteSingle, "kafka-cluster": KafkaThree}
    wanted = [k.strip() for k in args.only.split(",") if k.strip()]
    if shutil.which("etcd") is None and "kafkalite-cluster" in wanted:
        raise SystemExit("etcd is not installed (apt-get install etcd-server)")
    if "kafka-cluster" in wanted and (reason := bench.Kafka.unavailable()) is not None:
        print(f"Apache Kafka left out: {reason}", file=sys.stderr)
        wanted.remove("kafka-cluster")
    targets = [kinds[k]() for k in wanted]
    count = int(args.mb * 1024 * 1024 / SIZE)
    figures: dict[str, dict[str, list[float]]] = {t.name: {} for t in targets}
    try:
        for target in targets:
            target.start()
        for round_number in range(args.rounds):
            for target in (targets if round_number % 2 == 0 else targets[::-1]):
                clients = {"bootstrap.servers": target.bootstrap}
                topic = f"bench-{round_number}-{time.monotonic_ns()}"
                create_topic(target, topic)
                f = figures[target.name]
                f.setdefault("produce MB/s", []).append(count * SIZE / 2**20 / produce_throughput(
                    clients, topic, SIZE, count))
                f.setdefault("consume MB/s", []).append(count * SIZE / 2**20 / consume_throughput(
                    clients, topic, count))
                latency_topic = topic + "-latency"
                create_topic(target, latency_topic)
                cpu_before = cpu_seconds(target.server_pids())
                p50, p99, e2e = produce_latency(clients, latency_topic, SIZE, args.rate, args.latency_seconds)
                sent = args.rate * args.latency_seconds
                f.setdefault("server CPU ms/msg", []).append(
                    1000 * (cpu_seconds(target.server_pids()) - cpu_before) / sent)
                f.setdefault("produce p50 ms", []).append(p50)
                f.setdefault("produce p99 ms", []).append(p99)
                f.setdefault("end-to-end p99 ms", []).append(e2e)
                print(f"round {round_number + 1}: {target.name} done", file=sys.stderr)
        for target in targets:
            if hasattr(target, "kill") and args.kills:
                topic = f"failover-{time.monotonic_ns()}"
                create_topic(target, topic)
                gaps = sorted(failover_seconds(target, topic, args.kills))
                figures[target.name]["failover p50 s"] = [percentile(gaps, 0.5)]
                figures[target.name]["failover p99 s"] = [percentile(gaps, 0.99)]
    finally:
        for target in targets:
            target.stop()
    columns = ["produce MB/s", "consume MB/s", "produce p50 ms", "produce p99 ms", "end-to-end p99 ms",
               "server CPU ms/msg", "failover p50 s", "failover p99 s"]
    print(f"\nacks=all, {SIZE} B, {PARTITIONS} partitions; medians of {args.rounds} rounds; failover over "
          f"{args.kills} kill(s) of a leader\n")
    print("| broker | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name, f in figures.items():
        print(f"| {name} | " + " | ".join(f"{median(f[c]):.2f}" if c in f else "-" for c in columns) + " |")
    ours = figures.get("kafkalite-cluster")
    if ours:
        for other, f in figures.items():
            if other == "kafkalite-cluster":
                continue
            ratios = [f"{median(ours[c]) / median(f[c]):.2f}×" if c in f and c in ours and median(f[c]) else "-"
                      for c in columns]
            print(f"| kafkalite-cluster / {other} | " + " | ".join(ratios) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
