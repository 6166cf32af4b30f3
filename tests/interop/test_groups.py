"""Consumer groups with real clients: confluent-kafka (librdkafka), aiokafka, kafka-python and kafkajs.

Each member is its own process (tests/interop/group_member.py, tests/interop/node/group_member.js)
printing JSON event lines; every test here drives them the same way, whatever the client:

- three members of one group over a 6-partition topic: every partition owned by exactly one member;
- kill -9 one member: its partitions move to the survivors once its session (6 s) expires, and
  every acknowledged message is consumed (at least once); every new owner starts at the last commit;
- the survivors stop cleanly; a new member resumes exactly at the committed offsets (for one client,
  across a kill -9 and restart of the broker);
- librdkafka's cooperative-sticky assignor: members keep their partitions across a join and a leave;
- librdkafka, aiokafka and kafka-python members in one group (they agree on "roundrobin");
- live kafka-python members through a kill -9 and restart of the broker.

A steady idempotent producer (acks=all) runs alongside; "nothing lost" means every acknowledged
message was read, at its acknowledged offset.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from brokerproc import missing, require_tool

pytestmark = pytest.mark.interop

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "node")
PARTITIONS = 6
SESSION_MS = 6000  # the broker's group.min.session.timeout.ms
HEARTBEAT_MS = 1000
CLIENTS = ["confluent", "aiokafka", "kafka-python", "kafkajs"]
RESTART_BROKER_FOR = "confluent"  # the client whose resume phase runs across a broker kill -9 and restart


# ---------------------------------------------------------------- member processes


class Member:
    """A group member process and the events it printed."""

    def __init__(self, client: str, bootstrap: str, topic: str, group: str, name: str, *extra: str):
        self.client, self.name = client, name
        self.killed = False  # by the test, on purpose
        opts = ["--session-ms", str(SESSION_MS), "--heartbeat-ms", str(HEARTBEAT_MS), "--max-seconds", "150",
                "--client-id", name, *extra]
        if client == "kafkajs":
            node = require_tool("node")
            if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "kafkajs")):
                missing("kafkajs is not installed (run: cd tests/interop/node && npm install)")
            cmd, cwd = [node, "group_member.js", bootstrap, topic, group, *opts], NODE_DIR
        else:
            cmd, cwd = [sys.executable, os.path.join(HERE, "group_member.py"), client, bootstrap, topic, group,
                        *opts], HERE
        self.events: list[dict] = []
        self.stderr: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._pump_out, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

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

    @property
    def owned(self) -> set[int]:
        """The current assignment, from the last assigned/revoked event."""
        owned: set[int] = set()
        for e in self.snapshot():
            if e["event"] == "assigned":
                owned = set(e["partitions"])
            elif e["event"] == "revoked":
                owned -= set(e["partitions"])
        return owned

    def consumed(self) -> list[dict]:
        return self.snapshot("consumed")

    def committed(self) -> dict[int, int]:
        """The last acknowledged commit of each partition."""
        last: dict[int, int] = {}
        for e in self.snapshot("committed"):
            last.update({int(p): o for p, o in e["offsets"].items()})
        return last

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM: commit and leave the group."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"{self.name} did not stop on SIGTERM\n{self.describe()}")

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait(10)

    def describe(self) -> str:
        events = [e for e in self.snapshot() if e["event"] != "consumed"]
        return (f"--- {self.name} ({self.client}, exit {self.proc.poll()}): {len(self.consumed())} consumed; "
                f"other events: {json.dumps(events[-25:])}\nstderr: {''.join(self.stderr[-20:])}")


@pytest.fixture
def members():
    started: list[Member] = []

    def start(*args, **kwargs) -> Member:
        member = Member(*args, **kwargs)
        started.append(member)
        return member

    yield start
    for member in started:  # on success they were stopped already; on failure they die here
        member.kill()


def wait_for(condition, timeout: float, what: str, members: list[Member]) -> float:
    """Poll until `condition()` holds; returns when it did (time.time())."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.time()
        if any(not m.alive() and not m.snapshot("closed") and not m.killed for m in members):
            break  # a member crashed
        time.sleep(0.1)
    report = "\n".join(m.describe() for m in members)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{report}")


def balanced(group: list[Member], size: int | None = None):
    """Every partition owned by exactly one live member of `group` (each owning `size` when given)."""
    def check() -> bool:
        owned = [m.owned for m in group]
        if any(not m.alive() for m in group):
            return False
        if size is not None and any(len(o) != size for o in owned):
            return False
        return sorted(p for o in owned for p in o) == list(range(PARTITIONS))
    return check


# ---------------------------------------------------------------- the producer


class SteadyProducer:
    """Produces m-0, m-1, ... round-robin over the partitions at a steady rate, in a thread."""

    def __init__(self, bootstrap: str, topic: str, rate: float = 60):
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                                  "linger.ms": 5})
        self.topic, self.rate = topic, rate
        self.acked: dict[str, tuple[int, int]] = {}  # value -> (partition, offset)
        self.errors: list[str] = []
        self.seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _delivered(self, err, msg) -> None:
        if err is not None:
            self.errors.append(str(err))
        else:
            self.acked[msg.value().decode()] = (msg.partition(), msg.offset())

    def send(self, count: int) -> None:
        for _ in range(count):
            self.producer.produce(self.topic, value=f"m-{self.seq}".encode(), partition=self.seq % PARTITIONS,
                                  on_delivery=self._delivered)
            self.seq += 1
        assert self.producer.flush(30) == 0

    def _run(self) -> None:
        while not self._stop.wait(1 / self.rate):
            self.producer.produce(self.topic, value=f"m-{self.seq}".encode(), partition=self.seq % PARTITIONS,
                                  on_delivery=self._delivered)
            self.seq += 1
            self.producer.poll(0)

    def start(self) -> "SteadyProducer":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(10)
            self._thread = None
        assert self.producer.flush(30) == 0
        assert not self.errors, self.errors

    def high_watermarks(self) -> dict[int, int]:
        high = {p: 0 for p in range(PARTITIONS)}
        for partition, offset in self.acked.values():
            high[partition] = max(high[partition], offset + 1)
        return high


def create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)]).values():
        future.result(30)


def consumed_everything(group: list[Member], producer: SteadyProducer):
    def check() -> bool:
        seen = {e["value"] for m in group for e in m.consumed()}
        return set(producer.acked) <= seen
    return check


def check_at_least_once(group: list[Member], producer: SteadyProducer) -> None:
    seen = defaultdict(set)
    for m in group:
        for e in m.consumed():
            seen[e["value"]].add((e["partition"], e["offset"]))
    for value, where in producer.acked.items():
        assert seen.get(value) == {where}, f"{value} acknowledged at {where}, consumed at {seen.get(value)}"


def check_takeovers(victim: Member, survivors: list[Member]) -> None:
    """The new owner of each partition starts reading at its last commit.

    A partition's first offset read after the takeover equals the last commit acknowledged
    before it; for the killed member's partitions it may be one commit later, as the member may
    have died between its commit's acknowledgement and printing it.
    """
    victim_partitions = victim.owned
    for p in range(PARTITIONS):
        owner = next(m for m in survivors if p in m.owned)
        assigned_at = owner.snapshot("assigned")[-1]["t"]
        first = next(e for e in owner.consumed() if e["partition"] == p and e["t"] >= assigned_at)
        commits = [o for m in [victim, *survivors] for e in m.snapshot("committed") if e["t"] < first["t"]
                   for q, o in e["offsets"].items() if int(q) == p]
        last_commit = max(commits, default=0)
        if p in victim_partitions:
            read_by_victim = [e["offset"] for e in victim.consumed() if e["partition"] == p]
            upper = max(read_by_victim, default=-1) + 1
            assert last_commit <= first["offset"] <= max(upper, last_commit), (
                f"partition {p}: {owner.name} started at {first['offset']}, the killed member committed "
                f"{last_commit} and read up to {upper}")
        else:
            assert first["offset"] == last_commit, (
                f"partition {p}: {owner.name} started at {first['offset']}, the last commit was {last_commit}")


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("client", CLIENTS)
def test_three_members_fail_over_and_resume(client, broker_process, members):
    bootstrap = broker_process.bootstrap
    topic, group = f"groups-{client}", f"group-{client}"
    create_topic(bootstrap, topic)
    producer = SteadyProducer(bootstrap, topic).start()
    try:
        trio = [members(client, bootstrap, topic, group, f"{client}-{i}") for i in range(3)]
        # Every partition owned by exactly one member, two each.
        wait_for(balanced(trio, 2), 60, "three members to share the 6 partitions", trio)
        wait_for(lambda: all(m.committed() for m in trio), 30, "every member to read and commit", trio)

        # kill -9 one member: after its session times out, the survivors own everything.
        victim, survivors = trio[0], trio[1:]
        victim.killed = True
        victim.kill()
        killed_at = time.time()
        moved_at = wait_for(balanced(survivors, 3), SESSION_MS / 1000 + 30,
                            "the killed member's partitions to move to the survivors", trio)
        # The session expires one timeout after the last heartbeat, which came at most an interval before the kill.
        assert moved_at - killed_at >= (SESSION_MS - HEARTBEAT_MS) / 1000 - 1, "partitions moved too early"
        time.sleep(1)
    finally:
        producer.stop()
    wait_for(consumed_everything(trio, producer), 30, "every acknowledged message to be consumed", trio)
    check_at_least_once(trio, producer)
    check_takeovers(victim, survivors)

    # A clean stop commits what was read; a new member resumes exactly there.
    for m in survivors:
        m.stop()
        assert m.snapshot("closed"), m.describe()
    committed: dict[int, int] = {}
    for m in trio:
        for p, o in m.committed().items():
            committed[p] = max(committed.get(p, 0), o)
    assert committed == producer.high_watermarks(), "the survivors did not commit everything they read"
    if client == RESTART_BROKER_FOR:
        broker_process.restart(clean=False)
    producer.send(PARTITIONS * 5)
    newcomer = members(client, bootstrap, topic, group, f"{client}-new")
    wait_for(lambda: len(newcomer.consumed()) >= PARTITIONS * 5, 60, "the new member to read the new messages",
             [newcomer])
    time.sleep(0.5)  # anything read twice would show now
    read = defaultdict(list)
    for e in newcomer.consumed():
        read[e["partition"]].append(e["offset"])
    high = producer.high_watermarks()
    assert dict(read) == {p: list(range(committed[p], high[p])) for p in range(PARTITIONS)}
    newcomer.stop()


def test_librdkafka_cooperative_sticky(broker_process, members):
    bootstrap = broker_process.bootstrap
    topic, group = "groups-cooperative", "group-cooperative"
    create_topic(bootstrap, topic)
    producer = SteadyProducer(bootstrap, topic).start()
    coop = ("--assignor", "cooperative-sticky")
    try:
        pair = [members("confluent", bootstrap, topic, group, f"coop-{i}", *coop) for i in range(2)]
        wait_for(balanced(pair, 3), 60, "two members to share the 6 partitions", pair)
        before = [m.owned for m in pair]
        marks = [len(m.snapshot()) for m in pair]

        # A join: the newcomer gets two partitions, one from each, and nobody else gives up any other.
        third = members("confluent", bootstrap, topic, group, "coop-2", *coop)
        trio = [*pair, third]
        wait_for(balanced(trio, 2), 60, "a third member to get its share", trio)
        for m, owned, mark in zip(pair, before, marks):
            assert m.owned < owned, f"{m.name} did not keep its partitions: {owned} -> {m.owned}"
            revoked = {p for e in m.snapshot()[mark:] if e["event"] == "revoked" for p in e["partitions"]}
            assert revoked == owned - m.owned, f"{m.name} revoked {revoked}, moved {owned - m.owned}"

        # A clean leave: its partitions go to the others, who keep their own.
        before = [m.owned for m in pair]
        marks = [len(m.snapshot()) for m in pair]
        third.stop()
        wait_for(balanced(pair, 3), 30, "the leaver's partitions to move", pair)
        for m, owned, mark in zip(pair, before, marks):
            assert m.owned > owned
            assert not [e for e in m.snapshot()[mark:] if e["event"] == "revoked"], f"{m.name} revoked partitions"
        time.sleep(1)
    finally:
        producer.stop()
    wait_for(consumed_everything(trio, producer), 30, "every acknowledged message to be consumed", trio)
    check_at_least_once(trio, producer)
    for m in pair:
        m.stop()


def test_mixed_clients_share_one_group(broker_process, members):
    """librdkafka, aiokafka and kafka-python members in one group agree on "roundrobin" (the one assignor
    all three offer) and share the partitions."""
    bootstrap = broker_process.bootstrap
    topic, group = "groups-mixed", "group-mixed"
    create_topic(bootstrap, topic)
    producer = SteadyProducer(bootstrap, topic).start()
    try:
        mixed = [members("confluent", bootstrap, topic, group, "mixed-confluent"),
                 members("aiokafka", bootstrap, topic, group, "mixed-aiokafka", "--assignor", "roundrobin"),
                 members("kafka-python", bootstrap, topic, group, "mixed-kafka-python")]
        wait_for(balanced(mixed, 2), 60, "three different clients to share the 6 partitions", mixed)
        time.sleep(1)
    finally:
        producer.stop()
    wait_for(consumed_everything(mixed, producer), 30, "every acknowledged message to be consumed", mixed)
    check_at_least_once(mixed, producer)
    for m in mixed:
        m.stop()


def test_members_live_through_a_broker_crash(broker_process, members):
    """kill -9 of the broker under two live members: they carry on where their commits say, nothing lost."""
    bootstrap = broker_process.bootstrap
    topic, group = "groups-crash", "group-crash"
    create_topic(bootstrap, topic)
    producer = SteadyProducer(bootstrap, topic).start()
    try:
        pair = [members("kafka-python", bootstrap, topic, group, f"crash-{i}") for i in range(2)]
        wait_for(balanced(pair, 3), 60, "two members to share the 6 partitions", pair)
        wait_for(lambda: all(m.committed() for m in pair), 30, "both members to read and commit", pair)
        broker_process.restart(clean=False)
        restarted_at = time.time()
        wait_for(lambda: all(m.snapshot("committed")[-1]["t"] > restarted_at for m in pair), 60,
                 "both members to commit again after the restart", pair)
        wait_for(balanced(pair, 3), 60, "the pair to own everything again", pair)
        time.sleep(1)
    finally:
        producer.stop()
    wait_for(consumed_everything(pair, producer), 30, "every acknowledged message to be consumed", pair)
    check_at_least_once(pair, producer)
    for m in pair:
        m.stop()
