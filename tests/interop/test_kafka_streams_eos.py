"""Kafka Streams 4.1 with processing.guarantee=exactly_once_v2 against a live kafkalite broker, across a kill -9.

The word count of test_kafka_streams.py (tests/interop/java WordCount: a repartition topic and a RocksDB store
with a changelog), run exactly-once: every commit is a transaction holding the output, the repartition and
changelog records and the input offsets. The test feeds known text, kill -9's the Streams JVM once the output
shows it has processed part of it, restarts it on the same state directory, feeds more, and reads the output
with read_committed: every word's final count is exact and its updates are 1, 2, ..., n (no update lost,
none repeated), which at_least_once would not guarantee across the kill.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from brokerproc import BrokerProcess
from test_java_client import JavaProcess, create_topic, driver_command, start_broker, wait_for
from test_kafka_streams import words

pytestmark = pytest.mark.interop

APP = "java-wordcount-eos"
INPUT, OUTPUT = "wc-eos-lines", "wc-eos-counts"
VOCABULARY = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
              "kilo", "lima", "mike", "november", "oscar", "papa"]


def text(seed: int, lines: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(3, 9))) for _ in range(lines)]


FIRST = text(1, 1500)  # enough that the kill lands mid-way
SECOND = text(2, 200)


@pytest.fixture(scope="session")
def java_driver() -> list[str]:
    return driver_command()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("streams-eos-broker"))
    if os.environ.get("JAVA_INTEROP_BROKER") == "kafka":
        proc = start_broker(data_dir)
    else:  # the killed instance's transaction is aborted on its timeout: check for that often
        proc = BrokerProcess(data_dir, "--set", "group.initial.rebalance.delay.ms=0", "--set",
                             "transaction.abort.timed.out.transaction.cleanup.interval.ms=500").start()
    yield proc
    proc.kill()


class CommittedOutput:
    """Reads the output topic from the start with read_committed: every committed count update, in order."""

    def __init__(self, bootstrap: str):
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "wc-eos-reader",
                                  "enable.auto.commit": False, "isolation.level": "read_committed",
                                  "check.crcs": True, "fetch.wait.max.ms": 100})
        self.consumer.assign([TopicPartition(OUTPUT, p, 0) for p in range(2)])
        self.updates: dict[str, list[int]] = defaultdict(list)

    def poll(self) -> int:
        """Reads what is there; returns how many updates have been read in all."""
        for msg in self.consumer.consume(num_messages=1000, timeout=0.2):
            assert msg.error() is None, msg.error()
            self.updates[msg.key().decode()].append(int.from_bytes(msg.value(), "big", signed=True))
        return sum(len(u) for u in self.updates.values())

    def counts(self) -> dict[str, int]:
        return {word: counts[-1] for word, counts in self.updates.items()}


def produce_lines(bootstrap: str, lines: list[str]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i, line in enumerate(lines):
        producer.produce(INPUT, value=line.encode(), partition=i % 2)
    assert producer.flush(60) == 0


def start_app(java_driver, broker, state_dir) -> JavaProcess:
    app = JavaProcess(java_driver, "wordcount", broker.bootstrap, APP, str(state_dir), INPUT, OUTPUT,
                      "--guarantee", "exactly_once_v2", "--max-seconds", "300")
    wait_for(lambda: any(e["state"] == "RUNNING" for e in app.snapshot("state")), 120, "Streams to run", [app])
    return app


def test_exactly_once_word_count_across_a_kill(broker, java_driver, tmp_path):
    """Checks: with part of the first text counted (the committed output shows progress, not the end), a
    kill -9 of the Streams JVM; the restarted application (same state directory) goes on, and after more text
    every word's committed count is exactly its number of occurrences, reached by updates 1, 2, ..., n: the
    transaction open at the kill was aborted (its output never visible) and its input processed again once."""
    create_topic(broker.bootstrap, INPUT, 2)
    create_topic(broker.bootstrap, OUTPUT, 2)
    produce_lines(broker.bootstrap, FIRST)
    output = CommittedOutput(broker.bootstrap)
    first_total = sum(words(FIRST).values())

    app = start_app(java_driver, broker, tmp_path / "state")
    wait_for(lambda: output.poll() > 0, 120, "committed output from Streams", [app])
    app.killed = True
    app.kill()
    at_kill = output.poll()
    assert not app.snapshot("uncaught"), app.describe()
    assert at_kill < first_total, f"Streams had counted everything ({at_kill} updates) before the kill"

    app = start_app(java_driver, broker, tmp_path / "state")
    produce_lines(broker.bootstrap, SECOND)
    expected = dict(words(FIRST) + words(SECOND))

    def exact() -> bool:
        output.poll()
        return output.counts() == expected
    try:
        wait_for(exact, 300, "the exact word counts", [app])
    except AssertionError as e:
        raise AssertionError(f"{e}\n(updates read at the kill: {at_kill} of {first_total})\nexpected {expected}\n"
                             f"     got {output.counts()}") from None
    app.stop()
    assert not app.snapshot("uncaught"), app.describe()
    output.poll()
    for word, counts in output.updates.items():
        assert counts == list(range(1, len(counts) + 1)), f"{word}: updates {counts}"
    assert sum(len(u) for u in output.updates.values()) == sum(expected.values())
    output.consumer.close()
