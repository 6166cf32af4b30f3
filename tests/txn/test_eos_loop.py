"""Exactly-once across kill -9: a confluent-kafka consume-transform-produce loop (tests/txn/eos_loop.py, a
subprocess) killed at random points and restarted, and the broker killed once among them.

The input holds N numbered records; the loop writes each transformed to the output inside transactions that
also carry its consumer offsets (send_offsets_to_transaction). Whatever a kill cuts short is aborted (by the
next incarnation's init_transactions, or on the transaction timeout after the broker's kill), so a
read_committed consumer of the output must find each input's output exactly once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from brokerproc import BrokerProcess

pytestmark = pytest.mark.interop

LOOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "eos_loop.py")
INPUT, OUTPUT, GROUP, TXN_ID = "eos-in", "eos-out", "eos-loop", "eos-loop-txn"
PARTITIONS = 3
N = 4000
KILLS = 6
BROKER_KILL_AT = 3  # the broker is killed -9 (with the loop running) after this many kills of the loop


class Loop:
    """One incarnation of eos_loop.py and the transactions it reported."""

    def __init__(self, bootstrap: str):
        self.proc = subprocess.Popen([sys.executable, LOOP, bootstrap, INPUT, OUTPUT, GROUP, TXN_ID],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[dict] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def committed(self) -> int:
        return sum(1 for line in list(self.lines) if "committed" in line)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def describe(self) -> str:
        return f"loop exit {self.proc.poll()}, last lines {self.lines[-5:]}\nstderr: {''.join(self.stderr[-30:])}"


def wait_until(condition, timeout: float, what: str, loop: Loop | None = None,
               broker: BrokerProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            broker_log = "".join(broker.output[-60:]) if broker else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{loop.describe() if loop else ''}"
                                 f"\nthe broker's last lines:\n{broker_log}")
        time.sleep(0.1)


class CommittedOutput:
    """The output topic as a read_committed consumer sees it, from the start."""

    def __init__(self, bootstrap: str, isolation: str = "read_committed"):
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"eos-reader-{isolation}",
                                  "enable.auto.commit": False, "isolation.level": isolation,
                                  "fetch.wait.max.ms": 100})
        self.consumer.assign([TopicPartition(OUTPUT, p, 0) for p in range(PARTITIONS)])
        self.values: list[str] = []

    def poll(self) -> int:
        for msg in self.consumer.consume(num_messages=1000, timeout=0.2):
            if msg.error() is None:
                self.values.append(msg.value().decode())
        return len(self.values)


def test_loop_killed_at_random_points_outputs_each_input_exactly_once(tmp_path):
    """Checks: N numbered inputs; the loop is killed -9 KILLS times, each a random moment (seeded RNG) after
    it committed 1 to 5 transactions in that incarnation, and restarted; once the broker too is killed -9
    and restarted under the running loop. At the end the read_committed output holds out-0 .. out-(N-1), each
    exactly once, in input order per partition; the group's committed offsets are the input's ends; and the
    log (read_uncommitted) holds more than N records: some transactions were cut short by the kills and
    aborted, and none of their records is visible to read_committed."""
    rng = random.Random(20261202)
    broker = BrokerProcess(str(tmp_path / "data"), "--set", "group.initial.rebalance.delay.ms=0", "--set",
                           "transaction.abort.timed.out.transaction.cleanup.interval.ms=500").start()
    loop: Loop | None = None
    try:
        bootstrap = broker.bootstrap
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for topic in (INPUT, OUTPUT):
            admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(15)
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
        for i in range(N):
            producer.produce(INPUT, key=str(i).encode(), value=str(i).encode(), partition=i % PARTITIONS)
        assert producer.flush(60) == 0
        output = CommittedOutput(bootstrap)

        kills = []
        for kill in range(KILLS):
            loop = Loop(bootstrap)
            # Paced by the loop's own progress, not the clock: a fast machine would otherwise finish the input
            # before the last kill. Each incarnation commits a few transactions (at most 5 x 20 records).
            commits = rng.randint(1, 5)
            wait_until(lambda: loop.committed() >= commits, 120, f"the loop's progress (incarnation {kill})", loop,
                       broker)
            if kill == BROKER_KILL_AT:
                broker.restart(clean=False)
                # The loop reconnects; it may not commit again: librdkafka 2.16's send_offsets_to_transaction
                # can wait forever, past its timeout, for a group coordinator that went down (the broker
                # then never receives the TxnOffsetCommit; librdkafka issues #5456, #5511). The kill below
                # ends it either way, and the next incarnation must find the open transaction aborted.
                seen = loop.committed()
                deadline = time.monotonic() + 30
                while loop.committed() == seen and loop.proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.1)
            time.sleep(rng.uniform(0, 0.05))  # a random point of the next transaction, not a wait for anything
            # only a broker's restart may end the loop (fenced if its transaction timed out meanwhile)
            assert loop.proc.poll() is None or kill == BROKER_KILL_AT, loop.describe()
            loop.kill()
            kills.append(output.poll())
        assert kills[-1] < N, f"the loop had output everything before the last kill: {kills}"

        loop = Loop(bootstrap)
        wait_until(lambda: output.poll() >= N, 300, f"the output of all {N} inputs (had {output.values[-1:]})", loop,
                   broker)
        loop.proc.send_signal(signal.SIGTERM)
        loop.proc.wait(30)
        output.poll()
        assert len(output.values) == N, f"{len(output.values) - N} more outputs than inputs"
        assert sorted(output.values) == sorted(f"out-{i}" for i in range(N))
        for p in range(PARTITIONS):
            numbers = [int(v[4:]) for v in output.values if int(v[4:]) % PARTITIONS == p]
            assert numbers == sorted(numbers), f"partition {p} out of order"
        offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(GROUP)])[GROUP].result(10)
        assert {tp.partition: tp.offset for tp in offsets.topic_partitions} == {
            p: len(range(p, N, PARTITIONS)) for p in range(PARTITIONS)}
        in_log = CommittedOutput(bootstrap, "read_uncommitted")
        wait_until(lambda: in_log.poll() > N, 60, "aborted records in the output log")
        in_log.consumer.close()
        output.consumer.close()
    finally:
        if loop is not None and loop.proc.poll() is None:
            loop.kill()
        broker.kill()
