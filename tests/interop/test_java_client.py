"""The Apache Kafka Java client (kafka-clients 4.1) against a live kafkalite broker.

The Java side is tests/interop/java (a Maven project, built once per session): `Driver` subcommands
print JSON event lines on stdout, the tests here hold the expectations, and confluent-kafka
cross-checks that what the Java client saw is really what the broker stored. One broker serves the
whole module; every test uses its own topics and groups.

- producer: every codec x acks 0/1/all x idempotence, keys and headers, read back in order;
- consumer groups: eager (range) and cooperative-sticky rebalancing as members join and leave,
  static membership across a restart, commit and resume, kill -9 of a member;
- Admin: every call kafkalite supports, plus legacy AlterConfigs (gone from the Java Admin in 4.0)
  through librdkafka.

test_kafka_streams.py uses the build and process helpers defined here.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from brokerproc import BrokerProcess, missing
from kafkalite.protocol import record_batch

pytestmark = pytest.mark.interop

JAVA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "java")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVER_JAR = "kafkalite-java-interop-0.jar"  # what mvn package builds
ARCHIVE = "driver.jsa"  # in target/: the class-data archive
# Quick start-up over peak speed: these programs run seconds, not hours. The JVM's own warnings go to stderr,
# as stdout carries JSON only.
JVM_FLAGS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m", "-Xlog:disable", "-Xlog:all=warning:stderr"]
SESSION_MS = 6000  # kafkalite's default group.min.session.timeout.ms
HEARTBEAT_MS = 1000
PARTITIONS = 6  # of the consumer-group topics


# ---------------------------------------------------------------- the Java driver


@functools.cache
def _build() -> tuple[list[str] | None, str]:
    """(the command that runs the Java driver, or None and why not): builds tests/interop/java once per session."""
    java, javac, mvn = shutil.which("java"), shutil.which("javac"), shutil.which("mvn")
    if java is None or javac is None or mvn is None:
        return None, ("a JDK and Maven are needed for the Java interop tests "
                      "(apt-get install openjdk-17-jdk-headless maven)")
    target = os.path.join(JAVA_DIR, "target")
    classpath = _built_classpath(target)
    if classpath is None:
        try:
            done = subprocess.run([mvn, "-q", "-B", "-DskipTests", "package"], cwd=JAVA_DIR, capture_output=True,
                                  text=True, timeout=900, check=False)
        except subprocess.TimeoutExpired:
            return None, "mvn package in tests/interop/java took over 15 minutes"
        output = done.stdout + done.stderr
        if done.returncode != 0:
            if any(s in output for s in ("Could not resolve", "Could not transfer", "Non-resolvable", "Unknown host")):
                return None, "Maven could not fetch the Kafka client jars:\n" + output[-2000:]
            raise RuntimeError("mvn package failed in tests/interop/java:\n" + output[-4000:])
        classpath = _built_classpath(target)
        assert classpath is not None, "mvn package did not write target/classpath.txt and the jar"
    command = [java, *JVM_FLAGS, "-cp", classpath, "kafkalite.interop.Driver"]
    archive = _class_archive(command, target)
    if archive is not None:
        command[1:1] = [f"-XX:SharedArchiveFile={archive}"]
    return command, ""


def _newest(paths) -> float:
    return max((os.path.getmtime(path) for path in paths), default=0.0)


def _files(folder: str) -> list[str]:
    return [os.path.join(d, name) for d, _, names in os.walk(folder) for name in names]


def _built_classpath(target: str) -> str | None:
    """The driver's class path if the last build (whoever ran it: make test does too) is newer than every
    source and its jars are still there; else None. Maven itself takes seconds of CPU just to find that out.
    A build writes only what changed, so it is its newest output that must be newer than the newest source."""
    jar, listing = os.path.join(target, DRIVER_JAR), os.path.join(target, "classpath.txt")
    if not (os.path.exists(jar) and os.path.exists(listing)):
        return None
    outputs = [path for path in _files(target) if not os.path.basename(path).startswith(ARCHIVE)]
    sources = [os.path.join(JAVA_DIR, "pom.xml"), *_files(os.path.join(JAVA_DIR, "src"))]
    if _newest(sources) > _newest(outputs):
        return None
    with open(listing) as f:
        jars = f.read().strip().split(os.pathsep)
    if not all(os.path.exists(j) for j in jars):
        return None
    return os.pathsep.join([jar, *jars])


def _class_archive(command: list[str], target: str) -> str | None:
    """A class-data archive of the classes the driver loads (Driver warmup), written again whenever the jar or
    the class path changed: each JVM then starts seconds faster. None if the JVM cannot write one (the driver
    runs all the same)."""
    archive = os.path.join(target, ARCHIVE)
    inputs = [os.path.join(target, DRIVER_JAR), os.path.join(target, "classpath.txt")]
    if os.path.exists(archive) and os.path.getmtime(archive) >= _newest(inputs):
        return archive
    partial = f"{archive}.{os.getpid()}"
    try:
        subprocess.run([command[0], f"-XX:ArchiveClassesAtExit={partial}", *command[1:], "warmup"],
                       capture_output=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        return None
    if not os.path.exists(partial):
        return None
    os.replace(partial, archive)
    return archive


def driver_command() -> list[str]:
    """The command that runs the Java driver (built on first use); skips or fails as `missing` does."""
    command, why = _build()
    if command is None:
        missing(why)
    return command


@pytest.fixture(scope="session")
def java_driver() -> list[str]:
    return driver_command()


class JavaProcess:
    """A running Java driver and the JSON events it printed."""

    def __init__(self, command: list[str], *args: str):
        self.args = args
        self.events: list[dict] = []
        self.stderr: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen([*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._pumps = [threading.Thread(target=self._pump_out, daemon=True),
                       threading.Thread(target=self._pump_err, daemon=True)]
        for pump in self._pumps:
            pump.start()

    def _pump_out(self) -> None:
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"t": time.time(), "event": "output", "line": line.rstrip()}
            with self._lock:
                self.events.append(event)

    def _pump_err(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line)

    def snapshot(self, kind: str | None = None) -> list[dict]:
        with self._lock:
            return [e for e in self.events if kind is None or e["event"] == kind]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> list[dict]:
        """Wait for a one-shot run to finish; it must exit 0. Returns every event."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the Java driver {self.args[:1]} ran over {timeout} s\n{self.describe()}")
        for pump in self._pumps:
            pump.join(10)
        assert self.proc.returncode == 0, self.describe()
        return self.snapshot()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM: the driver closes its client cleanly."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"the Java driver did not stop on SIGTERM\n{self.describe()}")
        for pump in self._pumps:
            pump.join(10)

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait(10)

    def describe(self) -> str:
        events = [e for e in self.snapshot() if e["event"] != "consumed"]
        return (f"--- java {' '.join(self.args)} (exit {self.proc.poll()}): {len(self.snapshot('consumed'))} consumed;"
                f" other events: {json.dumps(events[-25:])}\nstderr: {''.join(self.stderr[-30:])}")


def wait_for(condition, timeout: float, what: str, processes) -> float:
    """Poll `condition()` until it holds (returns time.time() then) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.time()
        if any(not p.alive() and not getattr(p, "killed", False) for p in processes):
            break  # a process died: no point waiting
        time.sleep(0.1)
    report = "\n".join(p.describe() for p in processes)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{report}")


def start_broker(data_dir: str):
    """A kafkalite broker on an ephemeral loopback port; with JAVA_INTEROP_BROKER=kafka, Apache Kafka instead
    (scripts/kafka_reference.py), to confirm that the expectations here are Kafka's own answers."""
    if os.environ.get("JAVA_INTEROP_BROKER") == "kafka":
        sys.path.insert(0, os.path.join(REPO, "scripts"))
        from kafka_reference import KafkaBroker, KafkaUnavailable
        try:
            return KafkaBroker(data_dir).start()
        except KafkaUnavailable as e:
            missing(f"Apache Kafka is not available: {e}")
    return BrokerProcess(data_dir, "--set", "group.initial.rebalance.delay.ms=0").start()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """One broker for the module."""
    proc = start_broker(str(tmp_path_factory.mktemp("java-broker")))
    yield proc
    proc.kill()


def create_topic(bootstrap: str, topic: str, partitions: int, config: dict | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})
    admin.create_topics([new])[topic].result(30)


def read_with_confluent(bootstrap: str, topic: str, partitions: int) -> list:
    """Every record of `topic`, through librdkafka (CRCs checked)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "java-cross-check", "enable.auto.commit": False,
                         "check.crcs": True})
    highs = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < sum(highs.values()) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None:
            assert msg.error() is None, msg.error()
            got.append(msg)
    consumer.close()
    assert len(got) == sum(highs.values())
    return got


def stored_batches(broker, topic: str):
    """The record batches in the broker's log files of `topic` (kafkalite and Kafka lay them out alike)."""
    data_dir = str(broker.data_dir)
    pattern = os.path.join("logs" if os.path.isdir(os.path.join(data_dir, "logs")) else "", f"{topic}-*", "*.log")
    for path in sorted(glob.glob(os.path.join(data_dir, pattern))):
        with open(path, "rb") as f:
            yield from record_batch.iter_batches_lenient(f.read())


def produce_values(bootstrap: str, topic: str, values: list[str], partitions: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i, value in enumerate(values):
        producer.produce(topic, value=value.encode(), partition=i % partitions)
    assert producer.flush(30) == 0


# ---------------------------------------------------------------- producer


CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
MODES = [("all", True), ("all", False), ("1", False), ("0", False)]  # acks, idempotence
PER_PRODUCER = 30


def expected_headers(codec: str, seq: int) -> list:
    headers = [["codec", codec], ["seq", str(seq)]]
    return headers + [["null-valued", None]] if seq % 3 == 0 else headers


def test_producer_codecs_acks_idempotence_keys_headers(broker, java_driver):
    """Java producers, one per codec (none, gzip, snappy, lz4, zstd) x (acks=all idempotent, acks=all, acks=1,
    acks=0), send keyed records (some null keys) with headers (one null-valued). Checks: every record is read
    back by the Java consumer exactly once with its key, value, headers and timestamp, at the partition and
    offset the broker acknowledged (acks=0 gets no offset: the record must still be there); each producer's
    records keep their send order within a partition; a key always lands in one partition; the log files hold
    each record in a batch of its producer's codec; and librdkafka reads exactly the same records at the same
    offsets."""
    topic = "java-produce"
    create_topic(broker.bootstrap, topic, 4)
    events = JavaProcess(java_driver, "produce", broker.bootstrap, topic,
                         "--per-producer", str(PER_PRODUCER)).wait(120)
    acked = [e for e in events if e["event"] == "acked"]
    consumed = [e for e in events if e["event"] == "consumed"]
    assert len(acked) == len(CODECS) * len(MODES) * PER_PRODUCER
    assert {(e["codec"], e["acks"], e["idempotent"]) for e in acked} == {
        (c, acks, idem) for c in CODECS for acks, idem in MODES}

    by_value = {e["value"]: e for e in consumed}
    assert len(by_value) == len(consumed) == len(acked), "a record is missing or was duplicated"
    for a in acked:
        c = by_value[a["value"]]
        assert (c["partition"], c["key"], c["headers"]) == (a["partition"], a["key"],
                                                           expected_headers(a["codec"], a["seq"])), a
        if a["acks"] != "0":
            assert (c["offset"], c["timestamp"]) == (a["offset"], a["timestamp"]), a
        else:
            assert a["offset"] == -1, "acks=0 cannot know its offset"

    # Send order per producer and partition is offset order.
    per_producer = defaultdict(list)
    for c in sorted(consumed, key=lambda e: (e["partition"], e["offset"])):
        codec, acks, idempotent, seq = c["value"].split("/")
        per_producer[(codec, acks, idempotent, c["partition"])].append(int(seq))
    for where, seqs in per_producer.items():
        assert seqs == sorted(seqs), f"{where}: records out of send order: {seqs}"
    key_partitions = defaultdict(set)
    for c in consumed:
        if c["key"] is not None:
            key_partitions[c["key"]].add(c["partition"])
    assert key_partitions and all(len(p) == 1 for p in key_partitions.values()), key_partitions

    # The log holds the batches as the Java producers compressed them, each codec's records in its own batches.
    stored_codecs = {}
    for batch in stored_batches(broker, topic):
        for record in batch.records():
            stored_codecs[record.value.decode()] = CODECS[batch.codec]
    assert stored_codecs == {a["value"]: a["codec"] for a in acked}

    # librdkafka sees the same stored records.
    stored = {(m.partition(), m.offset()): m for m in read_with_confluent(broker.bootstrap, topic, 4)}
    assert len(stored) == len(consumed)
    for c in consumed:
        m = stored[(c["partition"], c["offset"])]
        headers = [[k, None if v is None else v.decode()] for k, v in (m.headers() or [])]
        assert (m.value().decode(), m.key() and m.key().decode(), headers, m.timestamp()[1]) == (
            c["value"], c["key"], c["headers"], c["timestamp"])


# ---------------------------------------------------------------- consumer groups


class Member(JavaProcess):
    """A Java consumer-group member (Driver member): its assignment, reads and commits."""

    def __init__(self, command, bootstrap: str, topic: str, group: str, name: str, *options: str):
        self.name = name
        self.killed = False  # on purpose, by the test
        super().__init__(command, "member", bootstrap, topic, group, "--client-id", name, "--session-ms",
                         str(SESSION_MS), "--heartbeat-ms", str(HEARTBEAT_MS), "--max-seconds", "120", *options)

    @property
    def owned(self) -> set[int]:
        last = self.snapshot("assigned")
        owned = set(last[-1]["partitions"]) if last else set()
        for e in self.snapshot():  # a revoke after the last assignment
            if e["event"] in ("revoked", "lost") and last and e["t"] >= last[-1]["t"]:
                owned -= set(e["partitions"])
        return owned if self.alive() else set()

    def consumed(self) -> list[dict]:
        return self.snapshot("consumed")

    def committed(self) -> dict[int, int]:
        last: dict[int, int] = {}
        for e in self.snapshot("committed"):
            last.update({int(p): o for p, o in e["offsets"].items()})
        return last


def owns(group: list[Member], *sizes: int):
    """Every partition owned by exactly one of `group`, the i-th member owning sizes[i]."""
    def check() -> bool:
        owned = [m.owned for m in group]
        return ([len(o) for o in owned] == list(sizes)
                and sorted(p for o in owned for p in o) == list(range(PARTITIONS)))
    return check


def merged_commits(*group: Member) -> dict[int, int]:
    """The group's committed offsets, as its members acknowledged them (a partition's latest is its highest)."""
    merged: dict[int, int] = {}
    for m in group:
        for p, o in m.committed().items():
            merged[p] = max(merged.get(p, 0), o)
    return merged


def read_everything(group: list[Member], values: list[str]):
    return lambda: set(values) <= {e["value"] for m in group for e in m.consumed()}


@pytest.fixture
def members(java_driver):
    started: list[Member] = []

    def start(*args) -> Member:
        member = Member(java_driver, *args)
        started.append(member)
        return member

    yield start
    for member in started:
        member.kill()


def test_eager_range_rebalance_join_leave_and_resume(broker, members):
    """Two Java members with the RangeAssignor (eager). Checks: the first owns all 6 partitions; when the
    second joins, the first revokes everything before the rebalance (eager) and each ends with 3 contiguous
    partitions (range); when the second stops (LeaveGroup) the first gets all 6 back well within a session
    timeout; every message is consumed; and a new member started after both stopped resumes exactly at the
    group's committed offsets, reading only the messages produced since."""
    bootstrap, topic, group = broker.bootstrap, "java-eager", "java-eager-group"
    create_topic(bootstrap, topic, PARTITIONS)
    first_batch = [f"e-{i}" for i in range(60)]
    produce_values(bootstrap, topic, first_batch, PARTITIONS)

    a = members(bootstrap, topic, group, "eager-a", "--assignor", "range")
    wait_for(owns([a], 6), 60, "the first member to own every partition", [a])
    joined_at = a.snapshot("assigned")[-1]["t"]
    b = members(bootstrap, topic, group, "eager-b", "--assignor", "range")
    wait_for(owns([a, b], 3, 3), 60, "the two members to share the partitions", [a, b])
    revoked = [e["partitions"] for e in a.snapshot("revoked") if e["t"] >= joined_at]
    assert revoked and revoked[0] == list(range(PARTITIONS)), f"eager: revoke everything first, got {revoked}"
    for m in (a, b):
        owned = sorted(m.owned)
        assert owned == list(range(owned[0], owned[0] + 3)), f"range gives contiguous partitions: {owned}"

    wait_for(read_everything([a, b], first_batch), 30, "every message to be read", [a, b])
    wait_for(lambda: merged_commits(a, b) == {p: 10 for p in range(PARTITIONS)}, 30, "everything read to be committed",
             [a, b])
    b.stop()
    left_at = b.snapshot("closed")[-1]["t"]
    back_at = wait_for(owns([a], 6), 30, "the first member to get every partition back", [a])
    assert back_at - left_at < SESSION_MS / 1000 - 1, "a LeaveGroup must rebalance at once, not at session expiry"
    a.stop()

    committed = merged_commits(a, b)
    assert committed == {p: 10 for p in range(PARTITIONS)}, committed
    second_batch = [f"e2-{i}" for i in range(12)]
    produce_values(bootstrap, topic, second_batch, PARTITIONS)
    c = members(bootstrap, topic, group, "eager-c", "--assignor", "range")
    wait_for(read_everything([c], second_batch), 60, "the new member to read the new messages", [c])
    c.stop()
    firsts = {}
    for e in c.consumed():
        firsts.setdefault(e["partition"], e["offset"])
    assert firsts == committed, "the new member must start at the committed offsets"
    assert sorted(e["value"] for e in c.consumed()) == sorted(second_batch)


def test_cooperative_sticky_join_and_leave(broker, members):
    """Two Java members with the CooperativeStickyAssignor (incremental rebalancing). Checks: when the second
    joins, the first revokes only the 3 partitions that move to the second and keeps the other 3 throughout
    (never revokes everything, never loses partitions); when the second leaves, the first is given those 3
    back without revoking anything."""
    bootstrap, topic, group = broker.bootstrap, "java-coop", "java-coop-group"
    create_topic(bootstrap, topic, PARTITIONS)
    a = members(bootstrap, topic, group, "coop-a", "--assignor", "cooperative-sticky")
    wait_for(owns([a], 6), 60, "the first member to own every partition", [a])
    b = members(bootstrap, topic, group, "coop-b", "--assignor", "cooperative-sticky")
    wait_for(owns([a, b], 3, 3), 60, "the two members to share the partitions", [a, b])
    moved = b.owned
    assert [set(e["partitions"]) for e in a.snapshot("revoked")] == [moved], "revoke only what moves"
    assert all(set(e["added"]) <= moved for e in b.snapshot("assigned"))

    revoked_before = len(a.snapshot("revoked"))
    b.stop()
    wait_for(owns([a], 6), 30, "the first member to get the partitions back", [a])
    assert len(a.snapshot("revoked")) == revoked_before, "a cooperative member keeps what it owns"
    assert set(a.snapshot("assigned")[-1]["added"]) == moved
    assert not a.snapshot("lost") and not b.snapshot("lost")
    a.stop()


def test_static_membership_restart_keeps_assignment(broker, members):
    """Two static members (group.instance.id). A static member's clean close sends no LeaveGroup, so the
    second, restarted within its session timeout under the same instance id, gets back exactly its partitions
    in the same generation, with no rebalance: the first member sees no revoke or new assignment. The
    restarted member resumes at the commits of its previous incarnation."""
    bootstrap, topic, group = broker.bootstrap, "java-static", "java-static-group"
    create_topic(bootstrap, topic, PARTITIONS)
    # A generous session: the restart (a new JVM) must come back within it.
    static = ["--assignor", "range", "--session-ms", "20000"]
    a = members(bootstrap, topic, group, "static-a", "--instance-id", "static-a", *static)
    wait_for(owns([a], 6), 60, "the first member to own every partition", [a])
    b = members(bootstrap, topic, group, "static-b", "--instance-id", "static-b", *static)
    wait_for(owns([a, b], 3, 3), 60, "the two members to share the partitions", [a, b])
    values = [f"s-{i}" for i in range(30)]
    produce_values(bootstrap, topic, values, PARTITIONS)
    wait_for(read_everything([a, b], values), 30, "every message to be read", [a, b])
    wait_for(lambda: b.committed() == {p: 5 for p in b.owned}, 30, "the second member to commit", [a, b])
    a_events = len(a.snapshot("assigned")) + len(a.snapshot("revoked"))
    b_partitions, b_generation = b.owned, b.snapshot("assigned")[-1]["generation"]
    b_committed = b.committed()

    b.stop()
    b2 = members(bootstrap, topic, group, "static-b", "--instance-id", "static-b", *static)
    wait_for(lambda: bool(b2.snapshot("assigned")), 30, "the restarted member's assignment", [a, b2])
    assigned = b2.snapshot("assigned")[-1]
    assert (set(assigned["partitions"]), assigned["generation"]) == (b_partitions, b_generation)
    more = [f"s2-{i}" for i in range(12)]
    produce_values(bootstrap, topic, more, PARTITIONS)
    wait_for(read_everything([a, b2], more), 30, "the new messages to be read", [a, b2])
    assert len(a.snapshot("assigned")) + len(a.snapshot("revoked")) == a_events, "the first member rebalanced"
    firsts = {}
    for e in b2.consumed():
        firsts.setdefault(e["partition"], e["offset"])
    assert firsts == b_committed, "the restarted member resumes at its commits"
    a.stop()
    b2.stop()


def test_kill_of_a_member_hands_its_partitions_over(broker, members):
    """kill -9 of one of two Java members (session 6 s, heartbeat 1 s). Checks: the survivor is given the
    dead member's partitions only once the session expired (no earlier than session - heartbeat after the
    kill) and within a few seconds after; it starts each of them at the dead member's last commit (or the
    one after, if the member died between a commit and printing it); every message is read."""
    bootstrap, topic, group = broker.bootstrap, "java-kill", "java-kill-group"
    create_topic(bootstrap, topic, PARTITIONS)
    a = members(bootstrap, topic, group, "kill-a", "--assignor", "range")
    wait_for(owns([a], 6), 60, "the first member to own every partition", [a])
    b = members(bootstrap, topic, group, "kill-b", "--assignor", "range")
    wait_for(owns([a, b], 3, 3), 60, "the two members to share the partitions", [a, b])
    values = [f"k-{i}" for i in range(60)]
    produce_values(bootstrap, topic, values, PARTITIONS)
    wait_for(lambda: b.committed() == {p: 10 for p in b.owned}, 30, "the second member to read and commit", [a, b])
    victim_partitions, victim_committed = b.owned, b.committed()
    read_by_victim = defaultdict(lambda: -1)
    b.killed = True
    b.kill()
    killed_at = time.time()
    for e in b.consumed():
        read_by_victim[e["partition"]] = max(read_by_victim[e["partition"]], e["offset"])
    moved_at = wait_for(owns([a], 6), SESSION_MS / 1000 + 20, "the survivor to take the partitions", [a])
    assert moved_at - killed_at >= (SESSION_MS - HEARTBEAT_MS) / 1000 - 0.5, "moved before the session expired"
    more = [f"k2-{i}" for i in range(12)]
    produce_values(bootstrap, topic, more, PARTITIONS)
    wait_for(read_everything([a, b], values + more), 30, "every message to be read", [a])
    taken_at = a.snapshot("assigned")[-1]["t"]
    for p in victim_partitions:
        first = next(e["offset"] for e in a.consumed() if e["partition"] == p and e["t"] >= taken_at)
        assert victim_committed[p] <= first <= max(victim_committed[p], read_by_victim[p] + 1), (
            f"partition {p}: the survivor started at {first}, the victim committed {victim_committed[p]}")
    a.stop()


# ---------------------------------------------------------------- Admin


@pytest.mark.filterwarnings("ignore:alter_configs has been deprecated")
def test_admin_every_supported_call(broker, java_driver):
    """The Java Admin client, one call after another (tests/interop/java AdminCheck): createTopics (with
    configs, validateOnly, an existing topic, replication 3), listTopics, describeTopics, createPartitions
    (grow, shrink, unknown topic), describeConfigs (topic and broker, with sources), incrementalAlterConfigs
    (SET, APPEND, DELETE, SUBTRACT, unknown name, bad value; the now compacted topic refuses a record without
    a key), listOffsets (earliest, latest, forTimestamp,
    maxTimestamp), deleteRecords, describeCluster, listConsumerGroups/listGroups, describeConsumerGroups
    (active and empty), listConsumerGroupOffsets, alterConsumerGroupOffsets (offset reset, and refused on an
    active group), deleteConsumerGroupOffsets (refused while subscribed), deleteConsumerGroups (refused while
    active, missing group), deleteTopics. Each answer is checked against what Kafka answers; then librdkafka
    checks the resulting state, and sends a legacy AlterConfigs (the Java Admin dropped it in 4.0)."""
    bootstrap, prefix = broker.bootstrap, "jadm"
    a, b, tp_a = f"{prefix}-a", f"{prefix}-b", lambda p: f"{prefix}-a-{p}"
    events = JavaProcess(java_driver, "admin", bootstrap, prefix).wait(120)
    steps = {e["event"]: e for e in events}
    assert not [e for e in events if e["event"] == "error"], [e for e in events if e["event"] == "error"]
    assert "done" in steps

    created = steps["create_topics"]
    assert created["created"] == {
        a: {"partitions": 3, "replication": 1, "retention.ms": "3600000"},
        b: {"partitions": 1, "replication": 1, "retention.ms": "604800000"},
        f"{prefix}-del": {"partitions": 2, "replication": 1, "retention.ms": "604800000"}}
    assert (created["validate_only_listed"], created["again"], created["bad_replication"]) == (
        False, "TopicExistsException", "InvalidReplicationFactorException")
    assert {a, b, f"{prefix}-del"} <= set(steps["list_topics"]["topics"])
    described = steps["describe_topics"]["topics"]
    assert [p["partition"] for p in described[a]["partitions"]] == [0, 1, 2]
    assert all(p["leader"] == 0 and p["replicas"] == [0] and p["isr"] == [0] for p in described[a]["partitions"])
    assert described[a]["topic_id"] != described[b]["topic_id"] and not described[a]["internal"]
    assert (steps["create_partitions"]["b_partitions"], steps["create_partitions"]["decrease"],
            steps["create_partitions"]["unknown_topic"]) == (
        4, "InvalidPartitionsException", "UnknownTopicOrPartitionException")

    topic_configs = steps["describe_configs"]["topic"]
    assert topic_configs["retention.ms"] == {"value": "3600000", "source": "DYNAMIC_TOPIC_CONFIG", "default": False,
                                             "read_only": False, "sensitive": False}
    assert topic_configs["segment.bytes"]["source"] == "DEFAULT_CONFIG"
    assert topic_configs["segment.bytes"]["default"] is True
    assert "num.partitions" in steps["describe_configs"]["broker"]

    altered = steps["incremental_alter_configs"]
    assert {k: v["value"] for k, v in altered["after_set"].items()} == {
        "retention.ms": "7200000", "max.message.bytes": "2000000", "cleanup.policy": "delete,compact"}
    assert {k: (v["value"], v["source"]) for k, v in altered["after_delete"].items()} == {
        "retention.ms": ("7200000", "DYNAMIC_TOPIC_CONFIG"), "max.message.bytes": ("1048588", "DEFAULT_CONFIG"),
        "cleanup.policy": ("compact", "DYNAMIC_TOPIC_CONFIG")}
    assert (altered["unknown_config"], altered["bad_value"]) == (
        "InvalidConfigurationException", "InvalidConfigurationException")

    assert steps["compacted_needs_keys"] == {**steps["compacted_needs_keys"], "unkeyed": "InvalidRecordException",
                                             "keyed_offset": 0}
    base = steps["list_offsets"]["base_timestamp"]
    assert steps["list_offsets"]["results"] == {
        "earliest": {"offset": 0, "timestamp": -1}, "latest": {"offset": 10, "timestamp": -1},
        "for_timestamp": {"offset": 3, "timestamp": base + 3000},
        "for_timestamp_exact": {"offset": 3, "timestamp": base + 3000},
        "for_timestamp_after_all": {"offset": -1, "timestamp": -1},
        "max_timestamp": {"offset": 6, "timestamp": base + 1_000_000}}
    deleted = steps["delete_records"]
    assert (deleted["low_watermark"], deleted["earliest_after"], deleted["beyond_high_watermark"]) == (
        4, 4, "OffsetOutOfRangeException")
    cluster = steps["describe_cluster"]
    assert cluster["controller"] == 0 and cluster["nodes"] == [{"id": 0, "host": "127.0.0.1", "port": broker.port}]
    assert cluster["cluster_id"]

    groups = steps["consumer_groups"]
    active = groups["while_active"]
    assert active["read"] == 10
    assert active["describe"] == {"state": "Stable", "assignor": "range", "simple": False, "coordinator": 0,
                                  "members": [{"client_id": f"{prefix}-g1-client",
                                               "partitions": [tp_a(0), tp_a(1), tp_a(2)]}]}
    assert (active["delete_offsets_subscribed"], active["alter_offsets_active"], active["delete_group_active"]) == (
        "GroupSubscribedToTopicException", "UnknownMemberIdException", "GroupNotEmptyException")
    assert groups["list_consumer_groups"][f"{prefix}-g1"] == "Empty"
    assert groups["list_consumer_groups"][f"{prefix}-g2"] == "Empty"
    assert groups["list_groups"][f"{prefix}-g1"]["protocol"] == "consumer"
    assert groups["after_leave"]["state"] == "Empty" and groups["after_leave"]["members"] == []
    assert groups["committed"] == {tp_a(0): 4, tp_a(1): 3, tp_a(2): 3}
    assert groups["committed_g2"] == {tp_a(1): 2}
    assert groups["after_reset"] == {tp_a(0): 0, tp_a(1): 3, tp_a(2): 3}
    assert groups["after_delete_offsets"] == {tp_a(0): 0, tp_a(2): 3}
    assert f"{prefix}-g2" not in groups["after_delete_group"] and f"{prefix}-g1" in groups["after_delete_group"]
    assert groups["delete_missing_group"] == "GroupIdNotFoundException"
    assert (steps["delete_topics"]["listed_after"], steps["delete_topics"]["again"]) == (
        False, "UnknownTopicOrPartitionException")

    # librdkafka sees the state the Java Admin left.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(timeout=10).topics
    assert len(metadata[a].partitions) == 3 and len(metadata[b].partitions) == 4
    assert f"{prefix}-del" not in metadata and f"{a}-validate-only" not in metadata
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "java-admin-probe"})
    assert probe.get_watermark_offsets(TopicPartition(b, 0), timeout=10) == (4, 10)
    probe.close()
    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(f"{prefix}-g1")])
    listed = {tp.partition: tp.offset for tp in offsets[f"{prefix}-g1"].result(10).topic_partitions}
    assert listed == {0: 0, 2: 3}
    assert f"{prefix}-g2" not in {g.group_id for g in admin.list_consumer_groups().result(10).valid}

    # Legacy AlterConfigs (key 33) replaces the whole set of a topic's dynamic configs.
    resource = ConfigResource("topic", a, set_config={"retention.ms": "1800000"})
    for future in admin.alter_configs([resource]).values():
        future.result(10)
    entries = admin.describe_configs([ConfigResource("topic", a)])
    configs = next(iter(entries.values())).result(10)
    assert configs["retention.ms"].value == "1800000"
    assert configs["cleanup.policy"].value == "delete" and configs["cleanup.policy"].is_default, (
        "legacy AlterConfigs resets the configs it does not name")
