"""Kafka Streams 4.1 against a live kafkalite broker: an at_least_once word count (tests/interop/java WordCount).

The topology splits lines into words, re-keys them by word (groupBy: through the repartition topic
APP-words-repartition) and counts them in a RocksDB store whose changelog is APP-counts-changelog; every new
count goes to the output topic. Streams creates both internal topics itself (CreateTopics), reads and commits
as a consumer group, and purges its repartition topic (DeleteRecords). The test feeds known text, checks the
counts exactly, restarts the application with its state directory wiped, so that it must rebuild the store
from the changelog, and checks that the counts go on from there.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from test_java_client import JavaProcess, create_topic, driver_command, start_broker, wait_for

pytestmark = pytest.mark.interop

APP = "java-wordcount"
INPUT, OUTPUT = "wc-lines", "wc-counts"
REPARTITION, CHANGELOG = f"{APP}-words-repartition", f"{APP}-counts-changelog"

FIRST = ["the quick brown fox jumps over the lazy dog", "The dog barks, the fox runs", "a b c a b a",
         "kafka streams counts words", "the end of the first part"] * 4
SECOND = ["the fox comes back", "dog dog dog", "new words appear: zebra, yak", "a a a the"] * 3


def words(lines: list[str]) -> Counter:
    """The word count the topology must compute: lower case, split at non-word characters (Java's \\W)."""
    return Counter(w for line in lines for w in re.split(r"\W+", line.lower(), flags=re.ASCII) if w)


@pytest.fixture(scope="session")
def java_driver() -> list[str]:
    return driver_command()  # built once per session, whichever module asks first


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    proc = start_broker(str(tmp_path_factory.mktemp("streams-broker")))
    yield proc
    proc.kill()


class OutputReader:
    """Reads the output topic from the start with librdkafka: every count update of every word, in order."""

    def __init__(self, bootstrap: str):
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "wc-reader", "enable.auto.commit": False,
                                  "check.crcs": True, "fetch.wait.max.ms": 100})
        self.consumer.assign([TopicPartition(OUTPUT, p, 0) for p in range(2)])
        self.updates: dict[str, list[int]] = defaultdict(list)

    def poll(self) -> None:
        for msg in self.consumer.consume(num_messages=500, timeout=0.2):
            assert msg.error() is None, msg.error()
            self.updates[msg.key().decode()].append(int.from_bytes(msg.value(), "big", signed=True))

    def counts(self) -> dict[str, int]:
        return {word: counts[-1] for word, counts in self.updates.items()}

    def wait_for_counts(self, expected: Counter, app: JavaProcess, timeout: float = 90) -> None:
        def reached() -> bool:
            self.poll()
            return self.counts() == dict(expected)
        try:
            wait_for(reached, timeout, "the word counts", [app])
        except AssertionError as e:
            raise AssertionError(f"{e}\nexpected {dict(expected)}\n     got {self.counts()}") from None


def produce_lines(bootstrap: str, lines: list[str]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i, line in enumerate(lines):
        producer.produce(INPUT, value=line.encode(), partition=i % 2)
    assert producer.flush(30) == 0


def start_app(java_driver, broker, state_dir) -> JavaProcess:
    app = JavaProcess(java_driver, "wordcount", broker.bootstrap, APP, str(state_dir), INPUT, OUTPUT,
                      "--max-seconds", "150")
    wait_for(lambda: any(e["state"] == "RUNNING" for e in app.snapshot("state")), 90, "Streams to run", [app])
    return app


def test_word_count_restores_from_its_changelog(broker, java_driver, tmp_path):
    """Checks: Streams creates its repartition topic and its compacted changelog through CreateTopics; the
    output holds exactly the expected count of every word, each word's updates being 1, 2, ..., n (nothing
    counted twice, nothing skipped); Streams purges consumed repartition records (DeleteRecords moves the
    topic's log start); a clean stop commits the input's end offsets. After the stop, more text, and a restart
    under the same application.id with a new, empty state directory: the store is restored from the changelog
    (a restore of every changelog partition from offset 0 to its end), and the counts continue from the
    totals, not from zero."""
    create_topic(broker.bootstrap, INPUT, 2)
    create_topic(broker.bootstrap, OUTPUT, 2)
    produce_lines(broker.bootstrap, FIRST)
    reader = OutputReader(broker.bootstrap)

    app = start_app(java_driver, broker, tmp_path / "state-1")
    reader.wait_for_counts(words(FIRST), app)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topics = admin.list_topics(timeout=10).topics
    assert len(topics[REPARTITION].partitions) == 2 and len(topics[CHANGELOG].partitions) == 2, sorted(topics)
    changelog_config = next(iter(admin.describe_configs([ConfigResource("topic", CHANGELOG)]).values())).result(10)
    assert changelog_config["cleanup.policy"].value == "compact"

    def repartition_purged() -> bool:
        probe = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "wc-probe"})
        try:
            return any(probe.get_watermark_offsets(TopicPartition(REPARTITION, p), timeout=10)[0] > 0 for p in (0, 1))
        finally:
            probe.close()
    wait_for(repartition_purged, 30, "Streams to purge its repartition topic", [app])
    app.stop()
    assert app.snapshot("closed"), app.describe()
    assert not app.snapshot("uncaught"), app.describe()
    # A clean close commits: the application's group is at the end of the input.
    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(APP)])[APP].result(10)
    committed = {tp.partition: tp.offset for tp in offsets.topic_partitions if tp.topic == INPUT}
    assert committed == {0: len(FIRST) // 2, 1: len(FIRST) // 2}

    produce_lines(broker.bootstrap, SECOND)
    app = start_app(java_driver, broker, tmp_path / "state-2")  # the same application, no local state
    reader.wait_for_counts(words(FIRST) + words(SECOND), app)
    restored = {e["partition"]: e for e in app.snapshot("restored") if e["topic"] == CHANGELOG}
    starts = {e["partition"]: e for e in app.snapshot("restore_start") if e["topic"] == CHANGELOG}
    assert sorted(restored) == sorted(starts) == [0, 1], app.describe()
    for p, start in starts.items():
        assert start["start"] == 0 and start["end"] > 0
        assert 0 < restored[p]["records"] <= start["end"]
    app.stop()
    assert not app.snapshot("uncaught"), app.describe()

    reader.poll()
    for word, counts in reader.updates.items():
        assert counts == list(range(1, len(counts) + 1)), f"{word}: updates {counts}"
    reader.consumer.close()
