"""The cluster fault harness behind scripts/torture_cluster.py and tests/cluster_faults/ (issue 16, CLUSTER.md's
test table).

Three brokers on 127.0.0.11-13 and a three-member etcd on 127.0.0.21-23, each broker run with a group id of its
own (60011-60013, as root) so that nftables rules in the harness's own table can cut traffic per broker: on
loopback every outgoing connection has the source address 127.0.0.1, but the kernel knows the socket's owner
(`meta skgid`).

Workload: idempotent acks=all librdkafka producers writing unique values `<producer>:<seq>` to partition
seq % P, a consumer group committing every half second, and a sampler that records each partition's leader,
ISR and high watermark and the group's committed offsets. The checker (`check`) reads everything back at the
end from each partition's leader and from every replica's segment files, and counts every way an
acknowledgement can be betrayed (see `Verdict`). Every process started here is stopped by its pid.
"""

from __future__ import annotations

import logging
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
for _p in (HERE, TESTS, os.path.join(TESTS, "cluster")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from clusterproc import wait_until as poll_until  # noqa: E402
from etcdproc import EtcdCluster  # noqa: E402
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
ETCD_HOST = "127.0.0.21"  # the first etcd member
ETCD_HOSTS = [ETCD_HOST, "127.0.0.22", "127.0.0.23"]
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
    return poll_until(condition, timeout, what, interval, error=CheckFailed)


# ---------------------------------------------------------------------------------------------- processes


class Node:
    """One broker process on its own loopback address (and, as root, its own group id)."""

    def __init__(self, node_id: int, workdir: str, etcd_endpoint: str, cluster_name: str, settings: dict,
                 power_cut: bool = False, address_base: int = 10):
        self.node_id = node_id
        self.host = BROKER_HOST(address_base + node_id)
        self.port = free_port(self.host)
        self.gid = 60000 + address_base + node_id if is_root() else None
        self.data_dir = os.path.join(workdir, f"broker-{node_id}")
        self.log_path = os.path.join(workdir, f"broker-{node_id}.log")
        # power_cut: run under power_cut_broker.py, which keeps what an fsync made durable (see power_cut()).
        self.mirror_dir = os.path.join(workdir, f"broker-{node_id}.durable") if power_cut else None
        launcher = ([os.path.join(HERE, "power_cut_broker.py"), "--durable-mirror", self.mirror_dir] if power_cut
                    else ["-m", "kafkalite"])
        self.cmd = [sys.executable, *launcher, "--node-id", str(node_id),
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

    def power_cut(self) -> dict:
        """kill -9, then every write not fsynced is dropped (power_cut_broker.drop_unsynced); what was dropped."""
        if self.mirror_dir is None:
            raise CheckFailed(f"broker {self.node_id} was not started under power_cut_broker.py")
        from power_cut_broker import drop_unsynced

        self.kill()
        return drop_unsynced(self.data_dir, self.mirror_dir)

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

    def clear_leftovers(self) -> None:
        """Remove the table a run killed in the middle of a fault left behind (its drops would cut the new
        cluster off from etcd)."""
        if self.available():
            self._nft(f"add table inet {TABLE}\ndelete table inet {TABLE}\n")

    def heal(self) -> None:
        if self.active:
            self._nft(f"delete table inet {TABLE}\n")
            self.active = False


class FaultCluster:
    """etcd (`etcd_members` of them) and three brokers on their own loopback addresses."""

    def __init__(self, workdir: str, brokers: int = 3, name: str = "faults", etcd_members: int = 3,
                 power_cut: bool = False, address_base: int = 10, **settings):
        """address_base: brokers on 127.0.0.<base + n> with group id 60000 + base + n, etcd on <base + 11>...; a
        cluster with another base is out of reach of the first one's nftables rules (they match those)."""
        self.workdir = workdir
        etcd_hosts = [BROKER_HOST(address_base + 11 + i) for i in range(etcd_members)]
        self.etcd = EtcdCluster(os.path.join(workdir, "etcd"), etcd_hosts)
        self.settings = {**SETTINGS, **settings}
        self.power_cut = power_cut  # brokers run under power_cut_broker.py: the power-loss faults need it
        self.nodes = {n: Node(n, workdir, self.etcd.endpoint, name, self.settings, power_cut, address_base)
                      for n in range(1, brokers + 1)}
        self.firewall = Firewall()
        self._admins: dict = {}
        self.suspect: set[int] = set()  # brokers under a fault: metadata is not asked of them

    def start(self) -> "FaultCluster":
        self.firewall.clear_leftovers()
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
        if not self.etcd.running():
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

    def fresh_admin(self):
        """An admin client of its own, of every broker up and not under a fault."""
        from confluent_kafka.admin import AdminClient

        brokers = [b.address for n, b in self.nodes.items() if b.alive() and n not in self.suspect]
        return AdminClient({"bootstrap.servers": ",".join(brokers), "broker.address.family": "v4", "log_level": 2})

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


class _EpochBumps(logging.Handler):
    """Keeps librdkafka's idempotence (eos) debug lines that say why a producer bumped its epoch. An idempotent
    producer re-sends what it had in flight under the new epoch from sequence 0, which no broker can tell from
    new writes (librdkafka issue #4953): a duplicate next to such a line is the client's; one without is ours."""

    def __init__(self, into: list[str]):
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        # ERRSEQ: librdkafka names the earlier failed request that left the sequence gap behind a bump.
        if ("bump" in message.lower() or message.startswith("ERRSEQ")) and len(self.into) < 50:
            self.into.append(message)


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
                 idempotent: bool = True, producers: int = 2, rate: float = 300.0, group: str | None = None,
                 java: list[str] | None = None, compacted: str | None = None):
        self.cluster, self.topic, self.partitions = cluster, topic, partitions
        self.acks, self.idempotent, self.rate = acks, idempotent, rate
        self.ledger = Ledger()
        self.samples: list[Sample] = []  # leaders, ISRs, controller
        self.offset_samples: list[Sample] = []  # high watermarks, committed offsets
        self.group = group or f"g-{topic}"
        self.consumed = 0
        self.group_errors: list[str] = []
        self.fatal: list[str] = []
        self.epoch_bumps: list[str] = []  # librdkafka's own words on why a producer bumped its epoch
        self._stop = threading.Event()
        tag = f"{os.getpid() % 10000}{random.randrange(1 << 16):04x}"
        self.names = [f"P{tag}{i}" for i in range(producers)]
        self._threads = [threading.Thread(target=self._produce, daemon=True, name="producers"),
                         threading.Thread(target=self._consume, daemon=True, name="consumer"),
                         threading.Thread(target=self._sample, daemon=True, name="sampler"),
                         threading.Thread(target=self._sample_offsets, daemon=True, name="offset sampler")]
        # Optional (the power-loss tests use them): the Java client as one more idempotent producer, and keyed
        # writes to a compacted topic (see the section "more workload" below).
        self.java, self.java_name, self.java_errors = java, f"J{tag}", []
        self.compacted, self.keyed, self.keyed_name = compacted, Ledger(), f"K{tag}"
        if java:
            self._threads.append(threading.Thread(target=self._java_produce, daemon=True, name="java producer"))
        if compacted:
            self._threads.append(threading.Thread(target=self._produce_keyed, daemon=True, name="keyed producer"))

    def start(self) -> "Workload":
        for t in self._threads:
            t.start()
        return self

    def stop(self, flush_timeout: float = 120) -> None:
        self._stop.set()
        self._flush_timeout = flush_timeout
        for t in self._threads:
            started = time.monotonic()
            t.join(flush_timeout + 30)
            if time.monotonic() - started > 10:  # a producer slow to flush: say which
                log(f"workload {self.topic}: {t.name} took {time.monotonic() - started:.0f} s to stop")

    def _producer(self):
        from confluent_kafka import Producer

        def on_error(err):
            if err.fatal():
                self.fatal.append(str(err))

        eos_log = logging.getLogger(f"rdkafka.{self.topic}")
        if not eos_log.handlers:
            eos_log.addHandler(_EpochBumps(self.epoch_bumps))
            eos_log.setLevel(logging.DEBUG)  # librdkafka's debug lines come at DEBUG
            eos_log.propagate = False

        return Producer({
            "bootstrap.servers": self.cluster.bootstrap, "broker.address.family": "v4",
            "acks": self.acks, "enable.idempotence": self.idempotent, "linger.ms": 5,
            "message.timeout.ms": 120000, "request.timeout.ms": 5000, "retry.backoff.ms": 50,
            "retry.backoff.max.ms": 300, "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 300,
            "topic.metadata.refresh.interval.ms": 1000, "log_level": 2, "error_cb": on_error,
            "debug": "eos", "logger": eos_log,
        })

    def _produce(self) -> None:
        from confluent_kafka import KafkaException

        producers = [self._producer() for _ in self.names]
        seqs = [0] * len(producers)
        failed: set[int] = set()  # producers that met a fatal error (raised from poll): they produce no more
        started = time.monotonic()
        while not self._stop.is_set():
            due = int(self.rate * (time.monotonic() - started) / len(producers))
            for i, producer in enumerate(producers):
                if i in failed:
                    continue
                try:
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
                except KafkaException as e:
                    if not _fatal(e.args[0]):
                        raise
                    self.fatal.append(str(e.args[0]))
                    failed.add(i)
            if len(failed) == len(producers):
                self._stop.wait(0.1)  # nothing left to produce with: until the harness stops the workload
        deadline = time.monotonic() + getattr(self, "_flush_timeout", 120)
        for producer in (p for i, p in enumerate(producers) if i not in failed):
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

    # -- more workload: the Java client, a compacted topic

    def _java_produce(self) -> None:
        """The Java driver's fault-produce (tests/interop/java, FaultProducer): values J<tag>:<seq> to partition
        seq % P at a third of the librdkafka rate; it flushes and exits when its stdin closes."""
        import json

        to_monotonic = time.monotonic() - time.time()
        err_path = os.path.join(self.cluster.workdir, f"java-{self.java_name}.stderr")
        with open(err_path, "w") as err:
            proc = subprocess.Popen([*self.java, "fault-produce", self.cluster.bootstrap, self.topic, self.java_name,
                                     str(self.partitions), "--rate", str(max(1, int(self.rate / 3)))],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)

        def read() -> None:
            for line in proc.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event["event"] not in ("acked", "failed"):
                    continue
                value = event["value"].encode()
                with self.ledger.lock:
                    self.ledger.sent_at[value] = event["sent_ms"] / 1000 + to_monotonic
                failure = None if event["event"] == "acked" else f"java: {event['error']}"
                self.ledger.on_delivery(failure, _Delivered(value, event.get("partition", -1),
                                                            event.get("offset", -1)))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        self._stop.wait()
        proc.stdin.close()
        try:
            code = proc.wait(getattr(self, "_flush_timeout", 120) + 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(10)
        reader.join(30)
        if code != 0:
            with open(err_path) as f:
                self.fatal.append(f"the Java producer exited with {code}: {f.read()[-1000:]}")

    def key_of(self, value: bytes) -> bytes:
        """The key of a keyed value K<tag>:<seq>: seq % COMPACT_KEYS."""
        return f"k{int(value.rsplit(b':', 1)[1]) % COMPACT_KEYS}".encode()

    def _produce_keyed(self) -> None:
        """Keyed writes K<tag>:<seq> (key k<seq % COMPACT_KEYS>, each key on one partition) to the compacted
        topic, at a sixth of the rate; every key is written again and again, so compaction has work."""
        from confluent_kafka import KafkaException

        producer = self._producer()
        seq = 0
        started = time.monotonic()
        while not self._stop.is_set():
            due = int(self.rate / 6 * (time.monotonic() - started))
            try:
                while seq < due and len(producer) < 5000:
                    value = f"{self.keyed_name}:{seq}".encode()
                    key = self.key_of(value)
                    with self.keyed.lock:
                        self.keyed.sent_at[value] = time.monotonic()
                    try:
                        producer.produce(self.compacted, key=key, value=value,
                                         partition=(seq % COMPACT_KEYS) % COMPACT_PARTITIONS,
                                         on_delivery=self.keyed.on_delivery)
                    except BufferError:
                        break
                    seq += 1
                producer.poll(0.01)
            except KafkaException as e:
                if not _fatal(e.args[0]):
                    raise
                self.fatal.append(f"keyed: {e.args[0]}")
                return  # a fatal producer takes no more writes (its outstanding ones failed with it)
        left = producer.flush(getattr(self, "_flush_timeout", 120))
        if left:
            self.fatal.append(f"{left} keyed message(s) neither acknowledged nor failed after the flush timeout")

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


def _fatal(error) -> bool:
    """A librdkafka error after which the producer takes no more writes: a fatal error raised from poll, or the
    _FATAL that produce() raises once the producer is in that state (that one does not say fatal() itself)."""
    from confluent_kafka import KafkaError

    return error.fatal() or error.code() == KafkaError._FATAL


COMPACT_KEYS = 200
COMPACT_PARTITIONS = 4
# A compacted topic whose segments roll every few seconds and are compacted at once (the brokers of a cluster
# that runs it check every 2 s: log.retention.check.interval.ms in POWER_SETTINGS).
COMPACT_CONFIGS = {"cleanup.policy": "compact", "segment.ms": "3000", "min.cleanable.dirty.ratio": "0.01",
                   "segment.bytes": "65536"}


@dataclass
class _Delivered:
    """What Ledger.on_delivery reads of a librdkafka message, for the Java producer's acknowledgements."""

    _value: bytes
    _partition: int
    _offset: int

    def value(self) -> bytes:
        return self._value

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


# ---------------------------------------------------------------------------------------------- the checker


class LeaderMoved(CheckFailed):
    """The broker asked no longer leads the partition (the metadata read just before was already stale)."""


def read_leader_copy(cluster: "FaultCluster", topic: str, partition: int, timeout: float = 30.0):
    """(leader, high watermark, records) read from the partition's current leader; when leadership moves
    between the metadata read and the fetch (a late election after a fault), ask the new leader."""
    deadline = time.monotonic() + timeout
    while True:
        leader = cluster.leader_of(topic, partition)
        node = cluster.nodes[leader]
        try:
            return (leader, *read_from_leader(node.host, node.port, topic, partition))
        except LeaderMoved:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


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
            if part["error_code"] == NOT_LEADER_OR_FOLLOWER:
                raise LeaderMoved(f"{host}:{port} no longer leads {topic}-{partition}")
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
    at: dict[tuple[int, int], bytes] = {}
    epoch_at: dict[tuple[int, int], int] = {}
    where: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
    for p in range(workload.partitions):
        leader, hw, records = read_leader_copy(cluster, topic, p)
        _, replicas, isr = cluster.partitions(topic)[p]  # as the leader read from knows them
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
        copies = {replica: read_replica_files(cluster.nodes[replica].data_dir, topic, p) for replica in replicas}
        for replica, (found, epochs, note) in copies.items():
            if note:
                v.note(f"broker {replica} {topic}-{p}: {note}")
            if replica == leader:
                history = epochs
            mismatched = False
            for offset, value, epoch in records:
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
                    if not mismatched:  # what it takes to explain one (seen once, in a short-mode isolate-leader)
                        mismatched = True
                        v.note(f"  batch epochs there: broker {replica} {mine[1]}, the leader {epoch}; epoch "
                               f"checkpoints: broker {replica} {epochs}, the leader {copies.get(leader, (0, []))[1]}; "
                               f"high watermark {hw}; ISR {isr}")
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


@dataclass
class CompactVerdict:
    """The compacted topic, read back: for every key, the last acknowledged value (or a later one of that key)
    must be what is read back last; no acknowledged key may be missing."""

    keys: int = 0  # keys acknowledged at least once
    acknowledged: int = 0
    stored: int = 0  # records read back (compaction removed the superseded ones)
    lost_keys: int = 0  # acknowledged, and no value of it read back
    stale_keys: int = 0  # the last value read back is older than the last acknowledged one
    wrong_values: int = 0  # an acknowledged value read back at another offset than acknowledged
    duplicates: int = 0  # a value read back at two offsets (compaction removes only older copies of a key)
    failed_deliveries: int = 0
    examples: list[str] = field(default_factory=list)
    allow_loss: bool = False

    @property
    def ok(self) -> bool:
        return self.wrong_values + self.duplicates == 0 and (self.allow_loss or self.lost_keys + self.stale_keys == 0)

    def summary(self) -> str:
        fields = ("keys", "acknowledged", "stored", "lost_keys", "stale_keys", "wrong_values", "duplicates",
                  "failed_deliveries")
        return "compacted: " + " ".join(f"{f}={getattr(self, f)}" for f in fields)


def check_compacted(cluster: FaultCluster, workload: Workload, allow_loss: bool = False) -> CompactVerdict:
    v = CompactVerdict(allow_loss=allow_loss)
    topic = workload.compacted
    last_read: dict[bytes, tuple[int, int, bytes]] = {}  # key: (partition, offset, value)
    read_at: dict[bytes, tuple[int, int]] = {}  # value: (partition, offset)
    for p in range(COMPACT_PARTITIONS):
        _, _, records = read_leader_copy(cluster, topic, p)
        for offset, value, _epoch in records:
            v.stored += 1
            if value in read_at:
                v.duplicates += 1
                v.examples.append(f"{value!r} stored at {read_at[value][0]}@{read_at[value][1]} and {p}@{offset}")
            read_at[value] = (p, offset)
            key = workload.key_of(value)
            if key not in last_read or offset > last_read[key][1]:
                last_read[key] = (p, offset, value)
    with workload.keyed.lock:
        acks = list(workload.keyed.acks)
        v.failed_deliveries = len(workload.keyed.errors)
    def seq(value: bytes) -> int:
        return int(value.rsplit(b":", 1)[1])

    # The last acknowledged value of a key is its latest write (the highest sequence number) that was
    # acknowledged: offsets can be reused after a loss, sequence numbers never are.
    last_acked: dict[bytes, Ack] = {}
    for a in acks:
        key = workload.key_of(a.value)
        if key not in last_acked or seq(a.value) > seq(last_acked[key].value):
            last_acked[key] = a
    v.keys, v.acknowledged = len(last_acked), len(acks)
    for key, a in sorted(last_acked.items()):
        got = last_read.get(key)
        if got is None:
            v.lost_keys += 1
            v.examples.append(f"key {key!r}: last acknowledged {a.value!r} at {a.partition}@{a.offset}; nothing read")
        elif seq(got[2]) < seq(a.value):
            v.stale_keys += 1
            v.examples.append(f"key {key!r}: last acknowledged {a.value!r} at {a.partition}@{a.offset}; read back "
                              f"last {got[2]!r} at {got[0]}@{got[1]}")
    for a in acks:  # what compaction kept stays at the offset it was acknowledged at
        kept = read_at.get(a.value)
        if kept is not None and kept != (a.partition, a.offset):
            v.wrong_values += 1
            v.examples.append(f"{a.value!r} acknowledged at {a.partition}@{a.offset}, read back at {kept[0]}@{kept[1]}")
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
        # Asked of each other broker directly: an admin client may route its request to the victim, which (stopped,
        # or cut from etcd and serving its last image) answers late or with the old leaders.
        for node in cluster.nodes.values():
            if node.node_id == victim or not node.alive():
                continue
            try:
                md = _raw_metadata(node, topic)
            except Exception:  # noqa: BLE001 - no answer yet
                continue
            leaders = {p["partition_index"]: p["leader_id"] for t in md["topics"] for p in t["partitions"]}
            if all(leaders.get(p, -1) not in (-1, victim) for p in partitions):
                return True
        return False

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


_coordinator_errors: list[str] = []  # what the admin client said while the coordinator was not found


def _coordinator(cluster: FaultCluster, group: str) -> int | None:
    """The group's coordinator, or None while the admin client gets no answer. A new client each time: the
    cached one of a broker that was killed and restarted by the previous repeat never answered DescribeGroups
    again (60 s, every long run; the broker itself answers at once), and librdkafka once aborted on an assertion
    (rd_kafka_enq_once_del_source_return) after such calls."""
    from confluent_kafka import KafkaException

    try:
        admin = cluster.fresh_admin()  # held until answered: a client collected meanwhile never answers
        return admin.describe_consumer_groups([group])[group].result(10).coordinator.id
    except (KafkaException, TimeoutError) as e:
        _coordinator_errors.append(f"{type(e).__name__}: {e}")
        return None


def kill_coordinator(cluster: FaultCluster, workload: Workload, rng: random.Random) -> FaultResult:
    topic = workload.topic
    asked = time.monotonic()
    _coordinator_errors.clear()
    try:
        victim = wait_until(lambda: _coordinator(cluster, workload.group), 60, "the group's coordinator")
    except CheckFailed as e:
        raise CheckFailed(f"{e}; the admin client said {_coordinator_errors[-1:]}") from None
    found_s = time.monotonic() - asked
    affected = sorted(p for p, (leader, _, _) in cluster.partitions(topic).items() if leader == victim)
    result = FaultResult("kill -9 group coordinator", time.monotonic(), victim=victim, affected=affected)
    result.measured["coordinator_found_s"] = round(found_s, 2)
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


def _cut(cluster: FaultCluster, node: int, *, from_brokers: bool, from_etcd: bool, one_way: bool = False) -> None:
    """`one_way`: only the packets `node` sends to the other brokers are dropped (theirs to it arrive)."""
    me = cluster.nodes[node]
    rules = []
    for other in cluster.nodes.values():
        if other.node_id != node and from_brokers:
            rules += [f"{me.gid} {other.host}"] + ([] if one_way else [f"{other.gid} {me.host}"])
    if from_etcd:
        rules += [f"{me.gid} {host}" for host in cluster.etcd.hosts]
    cluster.firewall.drop(rules)


def _partition_fault(name: str, cluster: FaultCluster, workload: Workload, victim: int, *, from_brokers: bool,
                     from_etcd: bool, hold: float, one_way: bool = False) -> FaultResult:
    topic = workload.topic
    epochs = _led_by(cluster, topic, victim)
    result = FaultResult(name, time.monotonic(), victim=victim, affected=sorted(epochs))
    if not from_etcd:
        # The partitions it leads stall (their ISR shrinks to the leader alone, under min.insync.replicas, as in
        # Kafka); those it follows must go on taking writes.
        result.measured["stalled_partitions"] = result.affected
        result.affected = [p for p in range(workload.partitions) if p not in epochs]
    cluster.suspect.add(victim)
    _cut(cluster, victim, from_brokers=from_brokers, from_etcd=from_etcd, one_way=one_way)
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
        # (This was the keep-alive stall of issue #16, fixed: test_fault_regressions.py has its regression tests.)
        result.failures.append(f"broker {victim} did not rejoin the cluster within {REJOIN_S} s of healing; "
                               f"restarted it")
        cluster.nodes[victim].kill()
        cluster.nodes[victim].start_when_registration_expired()
        result.measured["back_in_isr_s"] = cluster.wait_healthy(topic)
    if result.measured["back_in_isr_s"] > 5 and not result.failures:
        slow = f"broker {victim} took {result.measured['back_in_isr_s']:.1f} s after healing to be back in every ISR"
        if not from_etcd:  # a cut between brokers only: the replication side, not the broker's session
            result.known_bugs.append(
                f"{slow} (goal 5 s; a fetcher reconnects at most 2 s past its max_wait after the healing, but under "
                f"load a follower that was not cut can fall behind and leave an ISR for a few seconds right after)")
        else:
            result.failures.append(f"{slow} (goal 5 s)")
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


# ---------------------------------------------------------------------------------------------- etcd and one-way faults
# (the three-member etcd: its leader killed; a one-way cut between brokers)


def kill_etcd_leader(cluster: FaultCluster, workload: Workload, rng: random.Random, hold: float = 5.0) -> FaultResult:
    """kill -9 of etcd's raft leader with the workload running: the two members left elect another leader, the
    brokers on the dead member move to the others, and nobody loses a lease: every partition goes on producing,
    no broker leaves the cluster. Then the member is started again and rejoins."""
    return _etcd_leader_down(cluster, workload, "etcd leader killed", freeze=False, hold=hold)


def freeze_etcd_leader(cluster: FaultCluster, workload: Workload, rng: random.Random,
                       hold: float = 5.0) -> FaultResult:
    """SIGSTOP of etcd's raft leader: unlike a kill, its connections stay open and silent, so each broker on it
    finds out by a call's deadline (and a watch by its probe) and moves to another member."""
    return _etcd_leader_down(cluster, workload, "etcd leader frozen (SIGSTOP)", freeze=True, hold=hold)


def _etcd_leader_down(cluster: FaultCluster, workload: Workload, name: str, *, freeze: bool,
                      hold: float) -> FaultResult:
    topic = workload.topic
    result = FaultResult(name, time.monotonic(), affected=list(range(workload.partitions)))
    lost_before = {n: node.log_text().count("lost its lease") for n, node in cluster.nodes.items()}
    victim = cluster.etcd.wait_leader()
    if freeze:
        victim.proc.send_signal(signal.SIGSTOP)
    else:
        victim.kill()
    try:
        result.measured["etcd_victim"] = victim.name
        cluster.etcd.wait_leader(10)  # (a stopped member does not answer: it is not taken for the leader)
        result.measured["new_etcd_leader_s"] = time.monotonic() - result.started
        wait_until(lambda: time.monotonic() > result.started + hold, hold + 5, "the etcd member's outage")
        if not cluster.healthy(topic):
            result.failures.append(f"with one etcd member of {len(cluster.etcd.members)} down a broker left the "
                                   f"cluster or an ISR: {cluster.partitions(topic)}")
    finally:
        restarted = time.monotonic()
        if freeze:
            victim.proc.send_signal(signal.SIGCONT)
        else:
            victim.start()
    lost = {n: node.log_text().count("lost its lease") - lost_before[n] for n, node in cluster.nodes.items()}
    result.measured["leases_lost"] = sum(lost.values())
    if any(lost.values()):
        result.failures.append(f"brokers {[n for n, c in lost.items() if c]} lost their lease with one etcd member "
                               f"of {len(cluster.etcd.members)} down")
    cluster.etcd.wait_leader()
    result.measured["member_back_s"] = time.monotonic() - restarted
    cluster.wait_healthy(topic)
    result.ended = time.monotonic()
    return result


def one_way_leader_to_followers(cluster: FaultCluster, workload: Workload, rng: random.Random,
                                hold: float = 8.0) -> FaultResult:
    """Only the packets a leader sends to the other brokers are dropped (its fetch answers to its followers, its
    own fetches); theirs reach it, and it keeps etcd. Its ISRs shrink to itself, under min.insync.replicas, so its
    partitions stall (acks=all is refused, not lost); the partitions it follows go on without it."""
    victim = cluster.leader_of(workload.topic, rng.randrange(workload.partitions))
    return _partition_fault("one-way loss: leader to followers", cluster, workload, victim, from_brokers=True,
                            from_etcd=False, hold=hold, one_way=True)


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
    "kill-etcd-leader": kill_etcd_leader,
    "freeze-etcd-leader": freeze_etcd_leader,
    "one-way-leader-to-followers": one_way_leader_to_followers,
}
NEEDS_ROOT = {"isolate-leader", "isolate-follower", "cut-from-etcd", "one-way-leader-to-followers"}


# ---------------------------------------------------------------------------------------------- power loss
# (faults-power) A broker's power cut: kill -9, then what it had not fsynced is dropped (Node.power_cut, through
# power_cut_broker.py: the cluster must be started with power_cut=True). Once the victims' partitions have new
# leaders where that is possible, the victims are started again on what their disks kept. What kafkalite
# promises (docs/reliability.md, CLUSTER.md): with durability=always an acks=all write is fsynced on every ISR
# member before it is acknowledged, so a power cut of any number of brokers loses nothing acknowledged. A
# policy that acknowledges before the fsync (interval, never) relies on replication, as Kafka does by default
# (it leaves flushing to the OS): losing one or two of three brokers' page caches loses nothing while an
# in-sync replica survives; losing every copy loses what no fsync had reached, and the checker counts it.


def _power_cut(cluster: FaultCluster, workload: Workload, victims: list[int], name: str) -> FaultResult:
    topic = workload.topic
    parts = cluster.partitions(topic)
    survivors = [n for n in cluster.nodes if n not in victims]
    if len(survivors) >= cluster.settings["min.insync.replicas"]:
        affected = sorted(p for p, (leader, _, _) in parts.items() if leader in victims)
    else:  # too few brokers left for acks=all: every partition stops taking writes
        affected = list(range(workload.partitions))
    result = FaultResult(name, time.monotonic(), victim=victims[0], affected=affected)
    result.measured["victims"] = victims
    for n in victims:
        cluster.suspect.add(n)
        cluster.nodes[n].kill()  # every victim is dead before any disk is rolled back: "at once"
    dropped = {n: cluster.nodes[n].power_cut() for n in victims}
    result.measured["bytes_dropped"] = {n: d["bytes_dropped"] for n, d in dropped.items()}
    if survivors:
        def led_by_survivors():
            try:
                current = cluster.partitions(topic)
            except Exception:  # noqa: BLE001
                return False
            return all(current[p][0] in survivors for p in current)
        try:
            wait_until(led_by_survivors, 20, f"the survivors {survivors} to lead every partition")
            result.measured["new_leader_s"] = time.monotonic() - result.started
        except CheckFailed:  # a partition whose in-sync replicas were all cut stays leaderless (no unclean election)
            result.measured["leaderless"] = sorted(p for p, (leader, _, _) in cluster.partitions(topic).items()
                                                   if leader not in survivors)
    for n in victims:
        cluster.nodes[n].start_when_registration_expired()
        cluster.suspect.discard(n)
    if not survivors:
        # Every copy of some acknowledged batches may be gone (a policy that acknowledges before the fsync): the
        # brokers no longer know a producer's last sequences, answer OUT_OF_ORDER_SEQUENCE_NUMBER, and the client
        # fails for good, as it would against Kafka. That is the loss the checker counts.
        try:
            wait_until(lambda: workload.fatal or all(workload.resumed_after(result.started, p) for p in affected),
                       60, f"every partition to take writes again after {name} (or a producer to fail for good)")
        except CheckFailed as e:
            return _restored_after(cluster, topic, result, e)
        if workload.fatal:
            result.measured["producers_failed"] = workload.fatal[:2]
            result.measured["back_in_isr_s"] = cluster.wait_healthy(topic, timeout=60)
            result.ended = time.monotonic()
            return result
    try:
        _measure_recovery(result, workload, timeout=60)
        result.measured["back_in_isr_s"] = cluster.wait_healthy(topic, timeout=60)
    except CheckFailed as e:
        return _restored_after(cluster, topic, result, e)
    result.ended = time.monotonic()
    return result


def _restored_after(cluster: FaultCluster, topic: str, result: FaultResult, failure: CheckFailed) -> FaultResult:
    """A power cut the cluster did not recover from by itself: the failure is recorded and every broker restarted,
    so that the check at the end still runs. (The bug this once met: a restarted broker's registration expired
    within 2 s, on a lease it took before waiting out its previous run's key; the lease is now kept alive during
    that wait.)"""
    result.failures.append(f"{failure}; restarted every broker")
    cluster.restore(hard=True)
    result.measured["back_in_isr_s"] = cluster.wait_healthy(topic, timeout=60)
    result.ended = time.monotonic()
    return result


def power_cut_one(cluster: FaultCluster, workload: Workload, rng: random.Random) -> FaultResult:
    """Power loss of the leader of a random partition."""
    partition = rng.randrange(workload.partitions)
    # A metadata answer can name no leader (-1) for a moment (seen right after the warm-up): ask again.
    victim = wait_until(lambda: max(cluster.leader_of(workload.topic, partition), 0), 30,
                        f"a leader for partition {partition}")
    return _power_cut(cluster, workload, [victim], "power loss of a leader")


def power_cut_two(cluster: FaultCluster, workload: Workload, rng: random.Random) -> FaultResult:
    """Power loss of two of the three brokers at once (the controller's among them when it can be)."""
    first = cluster.controller()
    if first not in cluster.nodes:
        first = rng.choice(sorted(cluster.nodes))
    second = rng.choice([n for n in sorted(cluster.nodes) if n != first])
    return _power_cut(cluster, workload, sorted([first, second]), "power loss of two brokers at once")


def power_cut_all(cluster: FaultCluster, workload: Workload, rng: random.Random) -> FaultResult:
    """Power loss of every broker at once (etcd keeps running): the control run. Under a policy that does not
    fsync before acknowledging, acknowledged writes are lost, which shows the injection drops data."""
    return _power_cut(cluster, workload, sorted(cluster.nodes), "power loss of every broker")


POWER_FAULTS = {"power-cut-one": power_cut_one, "power-cut-two": power_cut_two, "power-cut-all": power_cut_all}
FAULTS.update(POWER_FAULTS)
# The brokers of a cluster for the power-loss faults: their compacted topics are compacted within seconds.
POWER_SETTINGS = {"log.retention.check.interval.ms": 2000}


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
    compacted: CompactVerdict | None = None

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
            "epoch_bumps": self.workload.epoch_bumps[:4],
            "delivery_errors": sorted({e for _, e in self.workload.ledger.errors})[:4],
            "measured": [{k: v for k, v in r.measured.items() if k != "healed_at"} for r in self.results],
            "verdict": self.verdict.summary(), "seconds": round(self.seconds),
            "compacted": self.compacted.summary() if self.compacted else None,
        }

    @property
    def ok(self) -> bool:
        return (self.verdict.ok and not any(r.failures for r in self.results)
                and (self.compacted is None or self.compacted.ok))


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(pct / 100 * len(ordered) + 0.5)) - 1))]


_topics = iter(range(1 << 30))


def run_fault(cluster: FaultCluster, fault: str, *, repeats: int = 1, partitions: int = 8, acks: str = "all",
              seed: int = 1, warmup_acks: int = 300, rate: float = 300.0, topic_configs: dict | None = None,
              allow_loss: bool | None = None, java: list[str] | None = None, compacted: bool = False) -> RunReport:
    """A fresh topic and workload, `repeats` times the fault, a quiet end, the check. `topic_configs` (e.g. a
    durability policy) apply to the workload's topics; `allow_loss`: losses are counted, not failures (the
    default: with acks other than all); `java`: the Java driver's command, to run it as one more producer;
    `compacted`: keyed writes to a compacted topic too, checked by check_compacted."""
    rng = random.Random(seed)
    topic = f"f{next(_topics)}-{fault}-{int(time.time())}"
    cluster.create_topic(topic, partitions, configs=topic_configs)
    compacted_topic = f"{topic}-compact" if compacted else None
    if compacted_topic:
        cluster.create_topic(compacted_topic, COMPACT_PARTITIONS, configs={**COMPACT_CONFIGS, **(topic_configs or {})})
    if allow_loss is None:
        allow_loss = acks != "all"
    workload = Workload(cluster, topic, partitions, acks=acks, idempotent=(acks == "all"), rate=rate, java=java,
                        compacted=compacted_topic).start()
    started = time.monotonic()
    results: list[FaultResult] = []
    producers_gone = False
    try:
        workload.wait_acks(warmup_acks)
        for i in range(repeats):
            result = FAULTS[fault](cluster, workload, rng)
            result.measured["isr_changes"] = workload.isr_changes(result.started, time.monotonic())
            if not result.recovery_s:
                result.recovery_s = [workload.longest_pause(p, result.started, result.ended) for p in result.affected]
            result.measured["acknowledged_during"] = len(workload.acks_between(result.started, result.ended))
            results.append(result)
            producers_gone = "producers_failed" in result.measured
            log(f"{fault} {i + 1}/{repeats}: victim {result.victim}, partitions {result.affected}, produce again "
                f"after {[round(r, 2) for r in result.recovery_s]} s, {result.measured}"
                + (f", FAILURES {result.failures}" if result.failures else "")
                + (f", KNOWN BUGS {result.known_bugs}" if result.known_bugs else ""))
            if producers_gone:
                break
            workload.wait_acks(100)
    except Exception:
        workload.stop(flush_timeout=10)
        cluster.restore()
        raise
    # A producer that failed for good leaves the others' batches for partitions it desynchronised retrying until
    # message.timeout.ms: they are not waited for.
    workload.stop(flush_timeout=10 if producers_gone else 120)
    log(f"{fault}: workload stopped; checking")
    cluster.wait_healthy(topic)
    windows = [w for r in results for w in r.fenced_windows]
    verdict = check(cluster, workload, fenced_windows=windows, allow_loss=allow_loss,
                    allow_duplicates=(acks != "all"))
    compact_verdict = None
    if compacted_topic:
        cluster.wait_healthy(compacted_topic)
        compact_verdict = check_compacted(cluster, workload, allow_loss=allow_loss)
    if workload.fatal:
        results.append(FaultResult("producer", started, failures=[f"fatal: {f}" for f in workload.fatal[:3]]))
    report = RunReport(fault, repeats, acks, verdict, results, time.monotonic() - started, workload, compact_verdict)
    log(f"{fault} x{repeats} acks={acks}: {verdict.summary()}"
        + (f"; {compact_verdict.summary()}" if compact_verdict else ""))
    for example in (compact_verdict.examples[:10] if compact_verdict else []):
        log(f"  {example}")
    for example in verdict.examples[:10]:
        log(f"  {example}")
    return report
