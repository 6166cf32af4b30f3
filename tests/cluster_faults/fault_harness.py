"""The cluster fault harness behind scripts/torture_cluster.py and tests/cluster_faults/ (issue 16, CLUSTER.md's
test table).

Three brokers on 127.0.0.11-13 and etcd on 127.0.0.21, each broker run with a group id of its own (60011-60013,
as root) so that nftables rules in the harness's own table can cut traffic per broker: on loopback every
outgoing connection has the source address 127.0.0.1, but the kernel knows the socket's owner (`meta skgid`).

Workload: idempotent acks=all librdkafka producers writing unique values `<producer>:<seq>` to partition
seq % P, a consumer group committing every half second, and a sampler that records each partition's leader,
ISR and high watermark and the group's committed offsets. The checker (`check`) reads everything back at the
end from each partition's leader and from every replica's segment files, and counts every way an
acknowledgement can be betrayed (see `Verdict`). Every process started here is stopped by its pid.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
for _p in (TESTS, os.path.join(TESTS, "cluster")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from etcdproc import EtcdProcess  # noqa: E402
from rawclient import RawClient  # noqa: E402

from kafkalite.log.checkpoint import decode_leader_epochs  # noqa: E402
from kafkalite.protocol.record_batch import iter_batches_lenient  # noqa: E402

TTL_MS = 3000
SETTINGS = {
    "broker.session.timeout.ms": TTL_MS,  # CLUSTER.md's test TTL
    "replica.lag.time.max.ms": 4000,
    "min.insync.replicas": 2,
    "default.replication.factor": 3,
    "offsets.topic.num.partitions": 6,
    "group.initial.rebalance.delay.ms": 0,
}
BROKER_HOST = "127.0.0.{}".format  # node 1 -> 127.0.0.11 (node + 10)
ETCD_HOST = "127.0.0.21"
TABLE = "kafkalite_faults"  # the harness's own nftables table
NOT_LEADER_OR_FOLLOWER = 6
REJOIN_S = 15  # a broker whose fault is over is back in every ISR by then (CLUSTER.md: 5 s after healing)


class CheckFailed(AssertionError):
    pass


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def is_root() -> bool:
    return os.geteuid() == 0


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(condition, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------- processes


class Node:
    """One broker process on its own loopback address (and, as root, its own group id)."""

    def __init__(self, node_id: int, workdir: str, etcd_endpoint: str, cluster_name: str, settings: dict):
        self.node_id = node_id
        self.host = BROKER_HOST(10 + node_id)
        self.port = free_port(self.host)
        self.gid = 60010 + node_id if is_root() else None
        self.data_dir = os.path.join(workdir, f"broker-{node_id}")
        self.log_path = os.path.join(workdir, f"broker-{node_id}.log")
        self.cmd = [sys.executable, "-m", "kafkalite", "--node-id", str(node_id),
                    "--listen", f"{self.host}:{self.port}", "--data-dir", self.data_dir,
                    "--cluster", f"etcd://{etcd_endpoint}/{cluster_name}", "--log-level", "INFO"]
        for key, value in settings.items():
            self.cmd += ["--set", f"{key}={value}"]
        self.proc: subprocess.Popen | None = None
        self.stopped = False  # SIGSTOPped

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60.0) -> "Node":
        with open(self.log_path, "a") as out:
            out.write(f"==== start at {time.time():.3f}\n")
            out.flush()
            offset = out.tell()
            # PYTHONFAULTHANDLER: a broker that hangs is sent SIGABRT, which writes every thread's stack to its log.
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, group=self.gid,
                                         env={**os.environ, "PYTHONFAULTHANDLER": "1"})
        self.stopped = False

        def listening() -> bool:
            if self.proc.poll() is not None:
                raise CheckFailed(f"broker {self.node_id} exited at start:\n{self.tail()}")
            with open(self.log_path) as f:
                f.seek(offset)
                return "listening on" in f.read()

        wait_until(listening, timeout, f"broker {self.node_id} to listen", interval=0.05)
        return self

    def start_when_registration_expired(self) -> "Node":
        """Start; while the lease of the previous incarnation still holds brokers/<id> (up to a TTL after a kill
        -9) the broker refuses to start, so try again until it is gone."""
        deadline = time.monotonic() + 3 * TTL_MS / 1000
        while True:
            try:
                return self.start()
            except CheckFailed as e:
                if "already registered" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def kill(self) -> None:
        """kill -9 (a stopped process too)."""
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
        self.stopped = False

    def terminate(self, timeout: float = 30.0) -> int | None:
        """SIGTERM: controlled shutdown. None if the broker did not stop within `timeout` (then it is killed)."""
        if not self.alive():
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)  # its threads' stacks into the log, then it dies
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
            return None

    def sigstop(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)
        self.stopped = True

    def sigcont(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    def tail(self, n: int = 40) -> str:
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def log_text(self) -> str:
        with open(self.log_path) as f:
            return f.read()


class Firewall:
    """nftables rules in a table of the harness's own, matched by the sending socket's group id (each broker has
    its own) and the destination address. `heal()` deletes the table."""

    def __init__(self):
        self.active = False

    @staticmethod
    def available() -> bool:
        return is_root() and shutil.which("nft") is not None

    def _nft(self, script: str) -> None:
        subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True, capture_output=True)

    def drop(self, rules: list[str]) -> None:
        """Each rule `GID DADDR` drops packets from sockets of that group to that address."""
        if not self.active:
            self._nft(f"add table inet {TABLE}\n"
                      f"add chain inet {TABLE} out {{ type filter hook output priority 0 ; }}\n")
            self.active = True
        self._nft("".join(f"add rule inet {TABLE} out meta skgid {gid} ip daddr {daddr} drop\n"
                          for gid, daddr in (r.split() for r in rules)))

    def heal(self) -> None:
        if self.active:
            self._nft(f"delete table inet {TABLE}\n")
            self.active = False


class FaultCluster:
    """etcd and three brokers on their own loopback addresses."""

    def __init__(self, workdir: str, brokers: int = 3, name: str = "faults", **settings):
        self.workdir = workdir
        self.etcd = EtcdProcess(os.path.join(workdir, "etcd"), host=ETCD_HOST)
        self.settings = {**SETTINGS, **settings}
        self.nodes = {n: Node(n, workdir, self.etcd.endpoint, name, self.settings) for n in range(1, brokers + 1)}
        self.firewall = Firewall()
        self._admins: dict = {}
        self.suspect: set[int] = set()  # brokers under a fault: metadata is not asked of them

    def start(self) -> "FaultCluster":
        self.etcd.start()
        try:
            for node in self.nodes.values():
                node.start()
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.firewall.heal()
        for node in self.nodes.values():
            node.kill()
        self.etcd.stop()

    def restore(self, hard: bool = False) -> None:
        """After a fault that failed half-way: heal the network, resume, restart what is down (`hard`: every
        broker, for brokers that run but left the cluster)."""
        self.firewall.heal()
        if self.etcd.proc is None or self.etcd.proc.poll() is not None:
            self.etcd.start()
        for node in self.nodes.values():
            if node.stopped:
                node.sigcont()
            if hard:
                node.kill()
        for node in self.nodes.values():
            if not node.alive():
                node.start_when_registration_expired()
        self.suspect.clear()

    @property
    def bootstrap(self) -> str:
        return ",".join(n.address for n in self.nodes.values())

    def admin(self, node: int | None = None):
        """An admin client of one broker (`node`), or of the first one that is up and not under a fault: a
        stopped or cut-off broker would answer late or with stale metadata."""
        from confluent_kafka.admin import AdminClient

        if node is None:
            node = next((n for n, b in self.nodes.items() if b.alive() and n not in self.suspect), 1)
        if node not in self._admins:
            self._admins[node] = AdminClient({"bootstrap.servers": self.nodes[node].address,
                                              "broker.address.family": "v4", "log_level": 2})
        return self._admins[node]

    def metadata(self, topic: str | None = None, timeout: float = 5):
        """The cluster's metadata, asked again for up to `timeout` while a restarted broker's connection breaks."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.admin().list_topics(topic, timeout=max(0.5, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - the transport broke under the client (a restart); again
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)

    def partitions(self, topic: str) -> dict:
        """{partition: (leader, replicas, isr)} as the cluster's metadata says."""
        parts = self.metadata(topic).topics[topic].partitions
        return {p: (m.leader, tuple(m.replicas), tuple(sorted(m.isrs))) for p, m in parts.items()}

    def leader_of(self, topic: str, partition: int) -> int:
        return self.partitions(topic)[partition][0]

    def controller(self) -> int:
        return self.metadata().controller_id

    def create_topic(self, name: str, partitions: int, replication: int = 3, configs: dict | None = None) -> None:
        from confluent_kafka.admin import NewTopic

        deadline = time.monotonic() + 30
        while True:
            admin = self.admin()  # held until the futures resolve: a collected client cancels them
            try:
                for f in admin.create_topics([NewTopic(name, partitions, replication, config=configs or {})]).values():
                    f.result(30)
                break
            except Exception as e:  # noqa: BLE001 - a transport broken by a restart is asked again
                if "TOPIC_ALREADY_EXISTS" in str(e):
                    break
                if "_TRANSPORT" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        wait_until(lambda: self.healthy(name), 30, f"topic {name} to have a leader and a full ISR everywhere")

    def healthy(self, topic: str) -> bool:
        try:
            md = self.metadata(topic, timeout=3)
        except Exception:  # noqa: BLE001 - no answer yet
            return False
        parts = md.topics[topic].partitions if topic in md.topics else {}
        live = set(md.brokers)
        return (live == set(self.nodes) and bool(parts)
                and all(m.leader in live and sorted(m.isrs) == sorted(m.replicas) for m in parts.values()))

    def wait_healthy(self, topic: str, timeout: float = 60) -> float:
        started = time.monotonic()
        wait_until(lambda: self.healthy(topic), timeout, f"every broker up and in every ISR of {topic}")
        return time.monotonic() - started


# ---------------------------------------------------------------------------------------------- the workload


@dataclass
class Ack:
    value: bytes
    partition: int
    offset: int
    sent_at: float
    acked_at: float


@dataclass
class Ledger:
    acks: list[Ack] = field(default_factory=list)
    by_value: dict[bytes, Ack] = field(default_factory=dict)
    errors: list[tuple[float, str]] = field(default_factory=list)  # delivery failures: never retried by the client
    sent_at: dict[bytes, float] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)  # one value acknowledged at two places
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_delivery(self, err, msg) -> None:
        now = time.monotonic()
        with self.lock:
            value = msg.value()
            if err is not None:
                self.errors.append((now, f"{err}"))
                return
            ack = Ack(value, msg.partition(), msg.offset(), self.sent_at.get(value, now), now)
            previous = self.by_value.get(value)
            if previous is not None and (previous.partition, previous.offset) != (ack.partition, ack.offset):
                self.conflicts.append(f"{value!r} acknowledged at {previous.partition}@{previous.offset} and "
                                      f"{ack.partition}@{ack.offset}")
            self.by_value[value] = ack
            self.acks.append(ack)


@dataclass
class Sample:
    at: float
    leaders: dict[int, int]
    isr: dict[int, tuple]
    high_watermarks: dict[int, int]
    committed: dict[int, int]
    controller: int


class Workload:
    """Producers, a committing consumer group and a sampler, each in a thread of its own."""

    def __init__(self, cluster: FaultCluster, topic: str, partitions: int, *, acks: str = "all",
                 idempotent: bool = True, producers: int = 2, rate: float = 300.0, group: str | None = None):
        self.cluster, self.topic, self.partitions = cluster, topic, partitions
        self.acks, self.idempotent, self.rate = acks, idempotent, rate
        self.ledger = Ledger()
        self.samples: list[Sample] = []  # leaders, ISRs, controller
        self.offset_samples: list[Sample] = []  # high watermarks, committed offsets
        self.group = group or f"g-{topic}"
        self.consumed = 0
        self.group_errors: list[str] = []
        self.fatal: list[str] = []
        self._stop = threading.Event()
        tag = f"{os.getpid() % 10000}{random.randrange(1 << 16):04x}"
        self.names = [f"P{tag}{i}" for i in range(producers)]
        self._threads = [threading.Thread(target=self._produce, daemon=True),
                         threading.Thread(target=self._consume, daemon=True),
                         threading.Thread(target=self._sample, daemon=True),
                         threading.Thread(target=self._sample_offsets, daemon=True)]

    def start(self) -> "Workload":
        for t in self._threads:
            t.start()
        return self

    def stop(self, flush_timeout: float = 120) -> None:
        self._stop.set()
        self._flush_timeout = flush_timeout
        for t in self._threads:
            t.join(flush_timeout + 30)

    def _producer(self):
        from confluent_kafka import Producer

        def on_error(err):
            if err.fatal():
                self.fatal.append(str(err))

        return Producer({
            "bootstrap.servers": self.cluster.bootstrap, "broker.address.family": "v4",
            "acks": self.acks, "enable.idempotence": self.idempotent, "linger.ms": 5,
            "message.timeout.ms": 120000, "request.timeout.ms": 5000, "retry.backoff.ms": 50,
            "retry.backoff.max.ms": 300, "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 300,
            "topic.metadata.refresh.interval.ms": 1000, "log_level": 2, "error_cb": on_error,
        })

    def _produce(self) -> None:
        producers = [self._producer() for _ in self.names]
        seqs = [0] * len(producers)
        started = time.monotonic()
        while not self._stop.is_set():
            due = int(self.rate * (time.monotonic() - started) / len(producers))
            for i, producer in enumerate(producers):
                while seqs[i] < due and len(producer) < 5000:
                    value = f"{self.names[i]}:{seqs[i]}".encode()
                    with self.ledger.lock:
                        self.ledger.sent_at[value] = time.monotonic()
                    try:
                        producer.produce(self.topic, value=value, partition=seqs[i] % self.partitions,
                                         on_delivery=self.ledger.on_delivery)
                    except BufferError:
                        break
                    seqs[i] += 1
                producer.poll(0.005)
        deadline = time.monotonic() + getattr(self, "_flush_timeout", 120)
        for producer in producers:
            left = producer.flush(max(0.1, deadline - time.monotonic()))
            if left:
                self.fatal.append(f"{left} message(s) neither acknowledged nor failed after the flush timeout")

    def _consume(self) -> None:
        from confluent_kafka import Consumer

        consumer = Consumer({"bootstrap.servers": self.cluster.bootstrap, "broker.address.family": "v4",
                             "group.id": self.group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
                             "session.timeout.ms": 10000, "log_level": 2})
        consumer.subscribe([self.topic])
        last_commit = time.monotonic()
        try:
            while not self._stop.is_set():
                message = consumer.poll(0.2)
                if message is not None and not message.error():
                    self.consumed += 1
                if time.monotonic() - last_commit > 0.5:
                    last_commit = time.monotonic()
                    try:
                        consumer.commit(asynchronous=False)
                    except Exception as e:  # noqa: BLE001 - nothing to commit, or a coordinator moving
                        if "NO_OFFSET" not in str(e):
                            self.group_errors.append(str(e))
        finally:
            consumer.close()

    def _sample(self) -> None:
        """Leaders, ISRs and the controller, four times a second."""
        while not self._stop.wait(0.25):
            try:
                md = self.cluster.metadata(self.topic, timeout=2)
                parts = md.topics[self.topic].partitions
                self.samples.append(Sample(time.monotonic(), {p: m.leader for p, m in parts.items()},
                                           {p: tuple(sorted(m.isrs)) for p, m in parts.items()}, {}, {},
                                           md.controller_id))
            except Exception:  # noqa: BLE001 - metadata unavailable for now
                continue

    def _sample_offsets(self) -> None:
        """High watermarks (from the leaders) and the group's committed offsets (from its coordinator)."""
        from confluent_kafka import Consumer, TopicPartition

        probe = Consumer({"bootstrap.servers": self.cluster.bootstrap, "broker.address.family": "v4",
                          "group.id": self.group, "enable.auto.commit": False, "log_level": 2})
        tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        try:
            while not self._stop.wait(0.3):
                hws = {}
                for tp in tps:
                    try:
                        hws[tp.partition] = probe.get_watermark_offsets(tp, timeout=0.5, cached=False)[1]
                    except Exception:  # noqa: BLE001 - no leader for now
                        pass
                committed = {}
                try:
                    for tp in probe.committed(tps, timeout=2):
                        if tp.error is None and tp.offset >= 0:
                            committed[tp.partition] = tp.offset
                except Exception:  # noqa: BLE001 - no coordinator for now
                    pass
                self.offset_samples.append(Sample(time.monotonic(), {}, {}, hws, committed, -1))
        finally:
            probe.close()

    # -- figures over a time window

    def acks_between(self, start: float, end: float) -> list[Ack]:
        with self.ledger.lock:
            return [a for a in self.ledger.acks if start <= a.acked_at < end]

    def resumed_after(self, at: float, partition: int | None = None) -> float | None:
        """Seconds from `at` until the first acknowledgement of a message sent after `at` (on `partition`)."""
        with self.ledger.lock:
            times = [a.acked_at for a in self.ledger.acks if a.sent_at > at
                     and (partition is None or a.partition == partition)]
        return min(times) - at if times else None

    def longest_pause(self, partition: int, start: float, end: float) -> float:
        """The longest time between two acknowledgements on `partition` around [start, end]: how long clients
        could not produce there."""
        with self.ledger.lock:
            times = sorted(a.acked_at for a in self.ledger.acks if a.partition == partition)
        before = [t for t in times if t <= start][-1:]
        inside = [t for t in times if start < t <= end]
        after = [t for t in times if t > end][:1]
        points = before + inside + after
        return max((b - a for a, b in zip(points, points[1:])), default=0.0)

    def isr_changes(self, start: float, end: float) -> int:
        window = [s for s in self.samples if start <= s.at < end]
        return sum(1 for a, b in zip(window, window[1:]) for p in b.isr if a.isr.get(p) != b.isr[p])

    def wait_acks(self, count: int, timeout: float = 60) -> None:
        goal = len(self.ledger.acks) + count
        wait_until(lambda: len(self.ledger.acks) >= goal, timeout, f"{count} more acknowledgements")


# ---------------------------------------------------------------------------------------------- the checker


def read_from_leader(host: str, port: int, topic: str, partition: int) -> tuple[int, list[tuple[int, bytes, int]]]:
    """(high watermark, [(offset, value, batch leader epoch)]) of a partition, read with Fetch v12."""
    out: list[tuple[int, bytes, int]] = []
    offset = 0
    with RawClient(port, host=host, timeout=30) as client:
        while True:
            response = client.request("Fetch", 12, {
                "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 4 << 20, "isolation_level": 0,
                "topics": [{"topic": topic, "partitions": [{
                    "partition": partition, "fetch_offset": offset, "partition_max_bytes": 4 << 20}]}]})
            part = response["responses"][0]["partitions"][0]
            if part["error_code"]:
                raise CheckFailed(f"fetch {topic}-{partition}@{offset} failed with error {part['error_code']}")
            records = part["records"] or b""
            if isinstance(records, list):
                records = b"".join(bytes(r) for r in records)
            for batch in iter_batches_lenient(records):
                for record in batch.records():
                    if record.offset >= offset:
                        out.append((record.offset, record.value, batch.partition_leader_epoch))
                offset = max(offset, batch.base_offset + batch.last_offset_delta + 1)
            if offset >= part["high_watermark"]:
                return part["high_watermark"], out
            if not records:
                raise CheckFailed(f"fetch {topic}-{partition}@{offset} returned nothing below the high watermark "
                                  f"{part['high_watermark']}")


def read_replica_files(data_dir: str, topic: str, partition: int) -> tuple[dict[int, tuple[bytes, int]], list, str]:
    """({offset: (value, leader epoch)}, leader-epoch checkpoint entries, note) from a broker's own segment files."""
    directory = os.path.join(data_dir, f"{topic}-{partition}")
    found: dict[int, tuple[bytes, int]] = {}
    note = ""
    if not os.path.isdir(directory):
        return found, [], f"{directory} does not exist"
    for name in sorted(n for n in os.listdir(directory) if n.endswith(".log")):
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        used = 0
        for batch in iter_batches_lenient(data):
            used += batch.size
            for record in batch.records():
                found[record.offset] = (record.value, batch.partition_leader_epoch)
        if data[used:].strip(b"\0"):
            note += f"{name}: {len(data) - used} trailing bytes that are no whole batch; "
    epochs = []
    try:
        with open(os.path.join(directory, "leader-epoch-checkpoint"), "rb") as f:
            epochs = decode_leader_epochs(f.read()) or []
    except FileNotFoundError:
        pass
    return found, epochs, note


@dataclass
class Verdict:
    acknowledged: int = 0
    stored: int = 0
    lost: int = 0  # acknowledged, and no longer anywhere in the log
    moved: int = 0  # acknowledged at an offset that now holds another value (an offset reused after failover)
    duplicates: int = 0  # a value stored at two offsets
    reordered: int = 0  # a producer's later message at a lower offset of the same partition
    replica_mismatches: int = 0  # an offset below the high watermark holding different values on two replicas
    replica_missing: int = 0  # an in-sync replica without an offset below the high watermark
    conflicting_acks: int = 0  # two values acknowledged at one offset, or one value at two
    epoch_violations: int = 0  # an acknowledged record whose leader epoch is outside the epoch history
    hw_backwards: int = 0
    committed_backwards: int = 0
    fenced_acks: int = 0  # acknowledged by a broker after it had lost its lease
    failed_deliveries: int = 0
    offset_unknown: int = 0  # acknowledged without an offset (librdkafka: persisted, offset unknown)
    examples: list[str] = field(default_factory=list)
    allow_loss: bool = False  # acks=1: losses are counted, not failures
    allow_duplicates: bool = False

    def note(self, text: str) -> None:
        if len(self.examples) < 30:
            self.examples.append(text)

    @property
    def ok(self) -> bool:
        return not ((0 if self.allow_loss else self.lost + self.moved)
                    + (0 if self.allow_duplicates else self.duplicates)
                    + self.reordered * (not self.allow_duplicates) + self.replica_mismatches + self.replica_missing
                    + self.conflicting_acks * (not self.allow_loss) + self.epoch_violations + self.hw_backwards
                    + self.committed_backwards + self.fenced_acks)

    def summary(self) -> str:
        fields = ("acknowledged", "stored", "lost", "moved", "duplicates", "reordered", "replica_mismatches",
                  "replica_missing", "conflicting_acks", "epoch_violations", "hw_backwards", "committed_backwards",
                  "fenced_acks", "failed_deliveries", "offset_unknown")
        return " ".join(f"{f}={getattr(self, f)}" for f in fields)


def check(cluster: FaultCluster, workload: Workload, *, fenced_windows: list[tuple[int, float, set]] = (),
          allow_loss: bool = False, allow_duplicates: bool = False) -> Verdict:
    """Everything read back from each partition's leader and from every replica's files, held against the
    ledger and the samples. `fenced_windows`: (partition, time after which its leader's lease had certainly
    expired, {its leader epochs}): an acknowledgement later than that which did not survive came from the fenced
    broker (the faults also ask the fenced broker directly: `_probe_produce`)."""
    v = Verdict(allow_loss=allow_loss, allow_duplicates=allow_duplicates)
    topic = workload.topic
    parts = cluster.partitions(topic)
    at: dict[tuple[int, int], bytes] = {}
    epoch_at: dict[tuple[int, int], int] = {}
    where: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
    for p in range(workload.partitions):
        leader, replicas, isr = parts[p]
        node = cluster.nodes[leader]
        hw, records = read_from_leader(node.host, node.port, topic, p)
        last_seq: dict[str, tuple[int, int]] = {}
        for offset, value, epoch in records:
            at[(p, offset)] = value
            epoch_at[(p, offset)] = epoch
            where[value].append((p, offset))
            name, _, seq = value.decode(errors="replace").partition(":")
            seq_no = int(seq) if seq.isdigit() else -1
            if name in last_seq and seq_no <= last_seq[name][0]:
                v.reordered += 1
                v.note(f"{p}@{offset}: {name} seq {seq_no} after seq {last_seq[name][0]} at {p}@{last_seq[name][1]}")
            last_seq[name] = max(last_seq.get(name, (-1, -1)), (seq_no, offset))
        history = None
        for replica in replicas:
            found, epochs, note = read_replica_files(cluster.nodes[replica].data_dir, topic, p)
            if note:
                v.note(f"broker {replica} {topic}-{p}: {note}")
            if replica == leader:
                history = epochs
            for offset, value, _epoch in records:
                if offset >= hw:
                    break
                mine = found.get(offset)
                if mine is None:
                    if replica in isr:
                        v.replica_missing += 1
                        v.note(f"in-sync broker {replica} lacks {p}@{offset} below the high watermark {hw}")
                elif mine[0] != value:
                    v.replica_mismatches += 1
                    v.note(f"{p}@{offset}: broker {replica} holds {mine[0]!r}, the leader {leader} {value!r}")
        starts = {epoch: start for epoch, start in (history or [])}
        for key, epoch in epoch_at.items():
            if key[0] != p or epoch < 0:
                continue
            later = [s for e, s in (history or []) if e > epoch]
            if epoch not in starts or key[1] < starts[epoch] or (later and key[1] >= min(later)):
                v.epoch_violations += 1
                v.note(f"{p}@{key[1]} has leader epoch {epoch}, outside the leader's epoch history {history}")
    v.stored = len(at)
    v.duplicates = sum(len(places) - 1 for places in where.values() if len(places) > 1)
    for value, places in where.items():
        if len(places) > 1:
            v.note(f"{value!r} stored {len(places)} times: {places[:4]}")
    with workload.ledger.lock:
        acks = list(workload.ledger.acks)
        v.failed_deliveries = len(workload.ledger.errors)
        conflicts = list(workload.ledger.conflicts)
    v.acknowledged = len({a.value for a in acks})
    by_offset: dict[tuple[int, int], bytes] = {}
    for a in acks:
        key = (a.partition, a.offset)
        if a.offset is None:  # librdkafka's "persisted, offset unknown": it must be stored, exactly once
            v.offset_unknown += 1
            if a.value not in where:
                v.lost += 1
                v.note(f"acknowledged {a.value!r} (offset unknown) is lost")
            continue
        if key in by_offset and by_offset[key] != a.value:
            conflicts.append(f"{key[0]}@{key[1]} acknowledged for {by_offset[key]!r} and {a.value!r}")
        by_offset[key] = a.value
        if a.value not in where:
            v.lost += 1
            v.note(f"acknowledged {a.value!r} at {key[0]}@{key[1]} (at {a.acked_at:.1f}) is lost")
        elif at.get(key) != a.value:
            v.moved += 1
            v.note(f"acknowledged {a.value!r} at {key[0]}@{key[1]}; that offset holds {at.get(key)!r}, the value "
                   f"is at {where[a.value][:2]}")
        for p, after, epochs in fenced_windows:
            # A retry that the next leader answers from its idempotence state acknowledges an old epoch's record
            # legitimately; an acknowledgement by the fenced leader itself is one that did not survive.
            if a.partition == p and a.acked_at > after and at.get(key) != a.value:
                v.fenced_acks += 1
                v.note(f"{a.value!r} at {key[0]}@{key[1]} (epoch {epoch_at.get(key)}) acknowledged "
                       f"{a.acked_at - after:.1f} s after its leader's lease had expired")
    v.conflicting_acks = len(conflicts)
    for c in conflicts[:5]:
        v.note(c)
    for name, series in (("high watermark", "high_watermarks"), ("committed offset", "committed")):
        last: dict[int, tuple[int, float]] = {}
        for s in workload.offset_samples:
            for p, value in getattr(s, series).items():
                if p in last and value < last[p][0]:
                    if series == "high_watermarks":
                        v.hw_backwards += 1
                    else:
                        v.committed_backwards += 1
                    v.note(f"{topic}-{p}: {name} went back from {last[p][0]} to {value} "
                           f"({s.at - last[p][1]:.1f} s later)")
                if p not in last or value >= last[p][0]:
                    last[p] = (value, s.at)
    return v


# ---------------------------------------------------------------------------------------------- faults


@dataclass
class FaultResult:
    """One fault: when it began and ended, the partitions it took a leader from, and what was measured."""

    name: str
    started: float
    ended: float = 0.0
    victim: int = -1
    affected: list[int] = field(default_factory=list)
    recovery_s: list[float] = field(default_factory=list)  # per affected partition: until it takes writes again
    measured: dict = field(default_factory=dict)  # figures of this fault (new controller after, ...)
    failures: list[str] = field(default_factory=list)  # what the fault itself found wrong
    known_bugs: list[str] = field(default_factory=list)  # wrong too, reported in the issue with a regression test
    fenced_windows: list[tuple[int, float, set]] = field(default_factory=list)


def _led_by(cluster: FaultCluster, topic: str, node: int) -> dict[int, int]:
    """{partition: leader epoch} of the partitions `node` leads, from its own Metadata answer."""
    md = _raw_metadata(cluster.nodes[node], topic)
    return {p["partition_index"]: p["leader_epoch"] for t in md["topics"] for p in t["partitions"]
            if p["leader_id"] == node}


def _raw_metadata(node: Node, topic: str) -> dict:
    with RawClient(node.port, host=node.host, timeout=5) as client:
        return client.request("Metadata", 12, {"topics": [{"name": topic}],
                                               "allow_auto_topic_creation": False,
                                               "include_topic_authorized_operations": False})


def _measure_recovery(result: FaultResult, workload: Workload, timeout: float = 30) -> None:
    """Wait until every affected partition takes writes sent after the fault began. The figure (the longest
    pause between acknowledgements on each) is taken at the end of the fault, in run_fault."""
    for p in result.affected:
        wait_until(lambda p=p: workload.resumed_after(result.started, p), timeout,
                   f"partition {p} to take writes again after {result.name}")


def _new_leaders(cluster: FaultCluster, topic: str, partitions: list[int], victim: int, timeout: float = 30) -> float:
    started = time.monotonic()

    def moved():
        try:
            parts = cluster.partitions(topic)
        except Exception:  # noqa: BLE001
            return False
        return all(parts[p][0] not in (-1, victim) for p in partitions)

    wait_until(moved, timeout, f"new leaders for {partitions} (broker {victim} gone)")
    return time.monotonic() - started


def kill_leader(cluster: FaultCluster, workload: Workload, rng: random.Random) -> FaultResult:
    """kill -9 of the leader of a random partition; restarted once its partitions have new leaders."""
    topic = workload.topic
    victim = cluster.leader_of(topic, rng.randrange(workload.partitions))
    affected = sorted(p for p, (leader, _, _) in cluster.partitions(topic).items() if leader == victim)
    result = FaultResult("kill -9 leader", time.monotonic(), victim=victim, affected=affected)
    cluster.nodes[victim].kill()
    result.measured["new_leader_s"] = _new_leaders(cluster, topic, affected, victim)
    _measure_recovery(result, workload)
    cluster.nodes[victim].start_when_registration_expired()
    result.measured["back_in_isr_s"] = cluster.wait_healthy(topic)
    result.ended = time.monotonic()
    return result


def kill_controller(cluster: FaultCluster, workload: Workload, rng: random.Random) -> FaultResult:
    topic = workload.topic
    victim = cluster.controller()
    affected = sorted(p for p, (leader, _, _) in cluster.partitions(topic).items() if leader == victim)
    result = FaultResult("kill -9 controller", time.monotonic(), victim=victim, affected=affected)
    cluster.nodes[victim].kill()

    def other_controller():
        try:
            return cluster.controller() not in (-1, victim)
        except Exception:  # noqa: BLE001
            return False

    wait_until(other_controller, 30, "a new controller")
    result.measured["new_controller_s"] = time.monotonic() - result.started
    if result.measured["new_controller_s"] > 4:
        result.failures.append(f"a new controller took {result.measured['new_controller_s']:.1f} s (goal 4 s)")
    _new_leaders(cluster, topic, affected, victim)
    _measure_recovery(result, workload)
    cluster.nodes[victim].start_when_registration_expired()
    cluster.wait_healthy(topic)
    result.ended = time.monotonic()
    return result


def _probe_produce(node: Node, topic: str, partition: int, value: bytes) -> int:
    """One acks=all Produce of a single record straight to `node`; its error code."""
    from kafkalite.protocol.record_batch import build_batch

    batch = build_batch([(None, value, [])], timestamps=int(time.time() * 1000))
    with RawClient(node.port, host=node.host, timeout=10) as client:
        response = client.request("Produce", 9, {
            "transactional_id": None, "acks": -1, "timeout_ms": 3000,
            "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": batch}]}]})
    return response["responses"][0]["partition_responses"][0]["error_code"]


def sigstop_leader(cluster: FaultCluster, workload: Workload, rng: random.Random) -> FaultResult:
    """SIGSTOP of a leader for 2 lease TTLs; right after SIGCONT it must refuse writes for what it led."""
    topic = workload.topic
    victim = cluster.leader_of(topic, rng.randrange(workload.partitions))
    node = cluster.nodes[victim]
    epochs = _led_by(cluster, topic, victim)
    result = FaultResult("SIGSTOP leader past its lease", time.monotonic(), victim=victim, affected=sorted(epochs))
    cluster.suspect.add(victim)
    node.sigstop()
    lease_gone = result.started + TTL_MS / 1000
    result.fenced_windows = [(p, lease_gone + 0.5, {e}) for p, e in epochs.items()]
    result.measured["new_leader_s"] = _new_leaders(cluster, topic, result.affected, victim)
    wait_until(lambda: time.monotonic() > result.started + 2 * TTL_MS / 1000, 30, "two lease TTLs")
    node.sigcont()
    answers = {}
    for p in result.affected:
        answers[p] = _probe_produce(node, topic, p, f"zombie-{victim}-{p}-{time.time()}".encode())
    result.measured["produce_after_resume"] = answers
    accepted = [p for p, code in answers.items() if code == 0]
    if accepted:
        result.failures.append(f"broker {victim} acknowledged acks=all writes to {accepted} right after SIGCONT")
    _measure_recovery(result, workload)
    try:
        result.measured["back_in_isr_s"] = cluster.wait_healthy(topic, timeout=REJOIN_S)
    except CheckFailed:
        # A broker whose lease was lost registers again (kafkalite/cluster/session.py); one that has not come back
        # in time is restarted, and the report names it.
        result.known_bugs.append(f"broker {victim} did not rejoin the cluster within {REJOIN_S} s of SIGCONT "
                                 f"(open: after a network cut its keep-alive can stall past the healing); restarted it")
        node.kill()
        node.start_when_registration_expired()
        cluster.wait_healthy(topic)
    cluster.suspect.discard(victim)
    result.ended = time.monotonic()
    return result


def _coordinator(cluster: FaultCluster, group: str) -> int:
    return cluster.admin().describe_consumer_groups([group])[group].result(10).coordinator.id


def kill_coordinator(cluster: FaultCluster, workload: Workload, rng: random.Random) -> FaultResult:
    topic = workload.topic
    victim = wait_until(lambda: _coordinator(cluster, workload.group), 30, "the group's coordinator")
    affected = sorted(p for p, (leader, _, _) in cluster.partitions(topic).items() if leader == victim)
    result = FaultResult("kill -9 group coordinator", time.monotonic(), victim=victim, affected=affected)
    consumed = workload.consumed
    cluster.nodes[victim].kill()
    _new_leaders(cluster, topic, affected, victim)
    _measure_recovery(result, workload)
    wait_until(lambda: workload.consumed > consumed + 100, 60, "the group to consume again")
    cluster.nodes[victim].start_when_registration_expired()
    cluster.wait_healthy(topic)
    result.ended = time.monotonic()
    return result


def rolling_restart(cluster: FaultCluster, workload: Workload, rng: random.Random) -> FaultResult:
    """SIGTERM and restart of every broker in turn: no client may see an error it does not retry."""
    topic = workload.topic
    result = FaultResult("rolling SIGTERM restart", time.monotonic(), affected=list(range(workload.partitions)))
    errors_before = len(workload.ledger.errors)
    for node in cluster.nodes.values():
        code = node.terminate()
        if code is None:
            # Seen after "shutting down: no new connections", while its fetchers truncated what it had led.
            result.known_bugs.append(f"broker {node.node_id} did not stop within 30 s of SIGTERM (killed; its "
                                     f"log: {node.log_path})")
        elif code != 0:
            result.failures.append(f"broker {node.node_id} exited with {code} on SIGTERM")
        node.start_when_registration_expired()
        cluster.wait_healthy(topic)
        workload.wait_acks(100)
    errors = workload.ledger.errors[errors_before:]
    if errors:
        result.failures.append(f"{len(errors)} client error(s), e.g. {errors[0][1]}")
    result.ended = time.monotonic()
    return result


def etcd_restart(cluster: FaultCluster, workload: Workload, rng: random.Random, hold: float = 5.0) -> FaultResult:
    """All of etcd stopped for longer than a lease, then started again: metadata stops, nothing acknowledged is
    lost, and everything resumes."""
    topic = workload.topic
    result = FaultResult("etcd stopped and restarted", time.monotonic(), affected=list(range(workload.partitions)))
    led = {n: _led_by(cluster, topic, n) for n in cluster.nodes}
    cluster.etcd.stop()
    # CLUSTER.md: a broker cut off from etcd fences itself within one TTL, so no acks=all write completes then.
    wait_until(lambda: time.monotonic() > result.started + TTL_MS / 1000 + 1, hold + 5, "a lease TTL and a second")
    answers = {n: {p: _probe_produce(cluster.nodes[n], topic, p, f"no-etcd-{n}-{p}".encode()) for p in parts}
               for n, parts in led.items()}
    result.measured["produce_without_etcd"] = answers
    accepted = [(n, p) for n, parts in answers.items() for p, code in parts.items() if code == 0]
    if accepted:
        result.failures.append(f"(broker, partition) {accepted} acknowledged acks=all writes more than a lease TTL "
                               f"after etcd stopped")
    wait_until(lambda: time.monotonic() > result.started + hold, hold + 5, "the etcd outage")
    result.measured["acks_during_outage"] = len(workload.acks_between(result.started, time.monotonic()))
    restarted = time.monotonic()
    cluster.etcd.start()
    took = wait_until(lambda: workload.resumed_after(restarted), 60, "writes after etcd came back")
    result.measured["writes_again_after_etcd_s"] = took
    try:
        result.measured["healthy_after_etcd_s"] = cluster.wait_healthy(topic, timeout=REJOIN_S)
        probe = f"{topic}-after-etcd"
        cluster.create_topic(probe, 1)  # metadata changes work again
    except Exception as e:  # noqa: BLE001
        result.known_bugs.append(f"the cluster did not recover within {REJOIN_S} s of etcd's restart ({e}); restarted "
                                 f"every broker")
        cluster.restore(hard=True)
        cluster.wait_healthy(topic)
    result.ended = time.monotonic()
    return result


def _cut(cluster: FaultCluster, node: int, *, from_brokers: bool, from_etcd: bool) -> None:
    me = cluster.nodes[node]
    rules = []
    for other in cluster.nodes.values():
        if other.node_id != node and from_brokers:
            rules += [f"{me.gid} {other.host}", f"{other.gid} {me.host}"]
    if from_etcd:
        rules.append(f"{me.gid} {ETCD_HOST}")
    cluster.firewall.drop(rules)


def _partition_fault(name: str, cluster: FaultCluster, workload: Workload, victim: int, *, from_brokers: bool,
                     from_etcd: bool, hold: float) -> FaultResult:
    topic = workload.topic
    epochs = _led_by(cluster, topic, victim)
    result = FaultResult(name, time.monotonic(), victim=victim, affected=sorted(epochs))
    if not from_etcd:
        # The partitions it leads stall (their ISR shrinks to the leader alone, under min.insync.replicas, as in
        # Kafka); those it follows must go on taking writes.
        result.measured["stalled_partitions"] = result.affected
        result.affected = [p for p in range(workload.partitions) if p not in epochs]
    cluster.suspect.add(victim)
    _cut(cluster, victim, from_brokers=from_brokers, from_etcd=from_etcd)
    try:
        if from_etcd:
            result.fenced_windows = [(p, result.started + TTL_MS / 1000 + 0.5, {e}) for p, e in epochs.items()]
            result.measured["new_leader_s"] = _new_leaders(cluster, topic, result.affected, victim)
            wait_until(lambda: time.monotonic() > result.started + TTL_MS / 1000 + 0.5, 10, "the lease to expire")
            answers = {p: _probe_produce(cluster.nodes[victim], topic, p, f"zombie-{victim}-{p}".encode())
                       for p in result.affected}
            result.measured["produce_to_cut_broker"] = answers
            accepted = [p for p, code in answers.items() if code == 0]
            if accepted:
                result.failures.append(f"broker {victim}, cut from etcd past its lease, acknowledged acks=all "
                                       f"writes to {accepted}")
        _measure_recovery(result, workload)
        if not from_etcd:  # a follower cut from the brokers leaves the ISRs of the partitions it follows
            def shrunk():
                parts = cluster.partitions(topic)
                return all(victim not in isr for p, (leader, _, isr) in parts.items() if leader != victim)
            wait_until(shrunk, 30, f"broker {victim} to leave the ISRs")
            result.measured["isr_shrunk_s"] = time.monotonic() - result.started
        wait_until(lambda: time.monotonic() > result.started + hold, hold + 5, "the partition")
    finally:
        cluster.firewall.heal()
    healed = time.monotonic()
    try:
        result.measured["back_in_isr_s"] = cluster.wait_healthy(topic, timeout=REJOIN_S)
    except CheckFailed:
        if not from_etcd:
            raise
        result.known_bugs.append(f"broker {victim} did not rejoin the cluster within {REJOIN_S} s of healing "
                                 f"(open: after a network cut its keep-alive can stall past the healing); restarted it")
        cluster.nodes[victim].kill()
        cluster.nodes[victim].start_when_registration_expired()
        result.measured["back_in_isr_s"] = cluster.wait_healthy(topic)
    if result.measured["back_in_isr_s"] > 5 and not result.known_bugs:
        result.failures.append(f"broker {victim} took {result.measured['back_in_isr_s']:.1f} s after healing to "
                               f"be back in every ISR (goal 5 s)")
    result.measured["healed_at"] = healed
    cluster.suspect.discard(victim)
    result.ended = time.monotonic()
    return result


def isolate_leader(cluster: FaultCluster, workload: Workload, rng: random.Random, hold: float = 8.0) -> FaultResult:
    victim = cluster.leader_of(workload.topic, rng.randrange(workload.partitions))
    return _partition_fault("leader isolated from brokers and etcd", cluster, workload, victim,
                            from_brokers=True, from_etcd=True, hold=hold)


def isolate_follower(cluster: FaultCluster, workload: Workload, rng: random.Random, hold: float = 8.0) -> FaultResult:
    """A broker cut from the other brokers only: it leaves the ISRs it follows in; those writes go on."""
    parts = cluster.partitions(workload.topic)
    leader = parts[rng.randrange(workload.partitions)][0]
    victim = rng.choice([n for n in cluster.nodes if n != leader])
    return _partition_fault("follower isolated", cluster, workload, victim, from_brokers=True, from_etcd=False,
                            hold=hold)


def cut_from_etcd(cluster: FaultCluster, workload: Workload, rng: random.Random, hold: float = 8.0) -> FaultResult:
    victim = cluster.leader_of(workload.topic, rng.randrange(workload.partitions))
    return _partition_fault("leader cut from etcd only", cluster, workload, victim, from_brokers=False,
                            from_etcd=True, hold=hold)


FAULTS = {
    "kill-leader": kill_leader,
    "kill-controller": kill_controller,
    "sigstop-leader": sigstop_leader,
    "kill-coordinator": kill_coordinator,
    "rolling-restart": rolling_restart,
    "etcd-restart": etcd_restart,
    "isolate-leader": isolate_leader,
    "isolate-follower": isolate_follower,
    "cut-from-etcd": cut_from_etcd,
}
NEEDS_ROOT = {"isolate-leader", "isolate-follower", "cut-from-etcd"}


# ---------------------------------------------------------------------------------------------- a run


@dataclass
class RunReport:
    fault: str
    repeats: int
    acks: str
    verdict: Verdict
    results: list[FaultResult]
    seconds: float
    workload: Workload

    def figures(self) -> dict:
        recovery = sorted(r for res in self.results for r in res.recovery_s)
        return {
            "fault": self.fault, "repeats": self.repeats, "acks": self.acks,
            "acknowledged": self.verdict.acknowledged, "lost": self.verdict.lost + self.verdict.moved,
            "duplicated": self.verdict.duplicates,
            "produce_again_p50_s": round(percentile(recovery, 50), 2) if recovery else None,
            "produce_again_p99_s": round(percentile(recovery, 99), 2) if recovery else None,
            "isr_changes": sum(r.measured.get("isr_changes", 0) for r in self.results),
            "failures": [f for r in self.results for f in r.failures],
            "known_bugs": [f for r in self.results for f in r.known_bugs],
            "measured": [{k: v for k, v in r.measured.items() if k != "healed_at"} for r in self.results],
            "verdict": self.verdict.summary(), "seconds": round(self.seconds),
        }

    @property
    def ok(self) -> bool:
        return self.verdict.ok and not any(r.failures for r in self.results)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(pct / 100 * len(ordered) + 0.5)) - 1))]


_topics = iter(range(1 << 30))


def run_fault(cluster: FaultCluster, fault: str, *, repeats: int = 1, partitions: int = 8, acks: str = "all",
              seed: int = 1, warmup_acks: int = 300, rate: float = 300.0) -> RunReport:
    """A fresh topic and workload, `repeats` times the fault, a quiet end, the check."""
    rng = random.Random(seed)
    topic = f"f{next(_topics)}-{fault}-{int(time.time())}"
    cluster.create_topic(topic, partitions)
    workload = Workload(cluster, topic, partitions, acks=acks, idempotent=(acks == "all"), rate=rate).start()
    started = time.monotonic()
    results: list[FaultResult] = []
    try:
        workload.wait_acks(warmup_acks)
        for i in range(repeats):
            result = FAULTS[fault](cluster, workload, rng)
            result.measured["isr_changes"] = workload.isr_changes(result.started, time.monotonic())
            if not result.recovery_s:
                result.recovery_s = [workload.longest_pause(p, result.started, result.ended) for p in result.affected]
            result.measured["acknowledged_during"] = len(workload.acks_between(result.started, result.ended))
            results.append(result)
            log(f"{fault} {i + 1}/{repeats}: victim {result.victim}, partitions {result.affected}, produce again "
                f"after {[round(r, 2) for r in result.recovery_s]} s, {result.measured}"
                + (f", FAILURES {result.failures}" if result.failures else "")
                + (f", KNOWN BUGS {result.known_bugs}" if result.known_bugs else ""))
            workload.wait_acks(100)
    except Exception:
        workload.stop(flush_timeout=10)
        cluster.restore()
        raise
    workload.stop()
    cluster.wait_healthy(topic)
    windows = [w for r in results for w in r.fenced_windows]
    verdict = check(cluster, workload, fenced_windows=windows, allow_loss=(acks != "all"),
                    allow_duplicates=(acks != "all"))
    if workload.fatal:
        results.append(FaultResult("producer", started, failures=[f"fatal: {f}" for f in workload.fatal[:3]]))
    report = RunReport(fault, repeats, acks, verdict, results, time.monotonic() - started, workload)
    log(f"{fault} x{repeats} acks={acks}: {verdict.summary()}")
    for example in verdict.examples[:10]:
        log(f"  {example}")
    return report
