"""Transactions on a three-broker kafkalite cluster, driven by confluent-kafka (librdkafka): a transaction spans
partitions led by all three brokers (the coordinator writes the markers of the others with WriteTxnMarkers), its
consumer offsets go to a group coordinator on another broker, and a coordinator killed with -9 mid-transaction is
replaced by the new leader of its __transaction_state partition, which aborts the transaction on its timeout.

One cluster for this module (etcd and three broker processes on loopback)."""

from __future__ import annotations

import itertools
import shutil
import time

import pytest

from brokerproc import missing
from clusterproc import Cluster, wait_until
from kafkalite.group import partition_for

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

pytestmark = pytest.mark.timeout(300)

TXN_PARTITIONS = 6  # __transaction_state's, small so that it is created quickly
OFFSETS_PARTITIONS = 6  # clusterproc's TEST_SETTINGS
_names = itertools.count()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if shutil.which("etcd") is None:
        missing("etcd is not installed (Debian package etcd-server)")
    c = Cluster(str(tmp_path_factory.mktemp("txn-cluster")), **{
        "transaction.state.log.num.partitions": TXN_PARTITIONS,
        "transaction.abort.timed.out.transaction.cleanup.interval.ms": 1000,
    }).start()
    yield c
    c.stop()


def admin(cluster) -> AdminClient:
    return AdminClient({"bootstrap.servers": cluster.bootstrap})


def create_topic(cluster, partitions: int) -> str:
    name = f"txn{next(_names)}-{int(time.time())}"
    client = admin(cluster)  # held until the futures resolve: a collected client cancels them
    for f in client.create_topics([NewTopic(name, partitions, 3)]).values():
        f.result(30)
    wait_until(lambda: len(leaders(cluster, name)) == partitions and -1 not in leaders(cluster, name).values(), 30,
               f"leaders for {name}")
    return name


def leaders(cluster, topic: str) -> dict[int, int]:
    found = admin(cluster).list_topics(topic, timeout=10).topics.get(topic)
    if found is None or found.error is not None:
        return {}
    return {p.id: p.leader for p in found.partitions.values()}


def coordinator_of(cluster, internal_topic: str, key: str, partitions: int) -> int:
    """The broker leading `key`'s partition of __transaction_state or __consumer_offsets (-1: none yet)."""
    return leaders(cluster, internal_topic).get(partition_for(key, partitions), -1)


def txn_producer(cluster, txn_id: str, **extra) -> Producer:
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": txn_id, "acks": "all",
                         "linger.ms": 1, **extra})
    producer.init_transactions(60)
    return producer


def read_values(cluster, topic: str, partitions: int, isolation: str, timeout: float = 30) -> list[bytes] | None:
    """Every data record the isolation level shows, read from the start to the high watermark; None if the
    position does not reach the high watermark in time (read_committed: a transaction is still open) or a partition
    has no leader now."""
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": f"reader-{next(_names)}",
                         "enable.auto.commit": False, "isolation.level": isolation})
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        try:
            ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps]
        except KafkaException:  # a leader just died: the caller asks again
            return None
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        while [tp.offset for tp in consumer.position(tps)] != ends:  # positions: the last offsets hold markers
            if time.monotonic() > deadline:
                return None
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                values.append(message.value())
        return values
    finally:
        consumer.close()


def test_commit_and_abort_across_brokers_with_offsets_on_a_third_broker(cluster):
    topic = create_topic(cluster, 3)
    assert sorted(leaders(cluster, topic).values()) == [1, 2, 3], "the partitions' leaders are not on 3 brokers"
    source = create_topic(cluster, 1)
    plain = Producer({"bootstrap.servers": cluster.bootstrap})
    for i in range(5):
        plain.produce(source, value=b"in-%d" % i, partition=0)
    assert plain.flush(30) == 0

    producer = txn_producer(cluster, "txn-spread", **{"transaction.timeout.ms": 60000})
    coordinator = coordinator_of(cluster, "__transaction_state", "txn-spread", TXN_PARTITIONS)
    assert coordinator in (1, 2, 3)

    # A group whose coordinator is not the transaction coordinator: its TxnOffsetCommit and its marker on
    # __consumer_offsets are another broker's work.
    warmup = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "warmup"})
    wait_until(lambda: _ask_for_coordinator(warmup, source) and _all_led(cluster, "__consumer_offsets"), 60,
               "__consumer_offsets to be created")
    warmup.close()
    group = next(g for g in (f"group-{i}" for i in range(100))
                 if coordinator_of(cluster, "__consumer_offsets", g, OFFSETS_PARTITIONS) not in (coordinator, -1))
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group, "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(source, 0, 0)])
    consumed = []
    wait_until(lambda: _poll_into(consumer, consumed) and len(consumed) == 5, 30, "the source records")

    producer.begin_transaction()
    for i in range(9):
        producer.produce(topic, value=b"commit-%d" % i, partition=i % 3)
    producer.send_offsets_to_transaction([TopicPartition(source, 0, 3)], consumer.consumer_group_metadata(), 30)
    producer.commit_transaction(60)

    producer.begin_transaction()
    for i in range(6):
        producer.produce(topic, value=b"abort-%d" % i, partition=i % 3)
    producer.flush(30)
    producer.send_offsets_to_transaction([TopicPartition(source, 0, 5)], consumer.consumer_group_metadata(), 30)
    producer.abort_transaction(60)

    producer.begin_transaction()
    producer.produce(topic, value=b"commit-last", partition=2)
    producer.commit_transaction(60)

    committed = read_values(cluster, topic, 3, "read_committed")
    assert committed is not None, "read_committed never reached the high watermark: a transaction stayed open"
    assert sorted(committed) == sorted([b"commit-%d" % i for i in range(9)] + [b"commit-last"])
    everything = read_values(cluster, topic, 3, "read_uncommitted")
    assert sorted(v for v in everything if v.startswith(b"abort")) == [b"abort-%d" % i for i in range(6)]
    [offset] = consumer.committed([TopicPartition(source, 0)], timeout=30)
    assert offset.offset == 3, "the aborted transaction's offsets were committed, or the committed ones were not"
    consumer.close()


def test_a_marker_for_a_partition_whose_leader_died_reaches_the_new_leader(cluster):
    topic = create_topic(cluster, 3)
    txn_id = "txn-leader-dies"
    producer = txn_producer(cluster, txn_id, **{"transaction.timeout.ms": 60000})
    coordinator = coordinator_of(cluster, "__transaction_state", txn_id, TXN_PARTITIONS)
    victim = next(leader for leader in leaders(cluster, topic).values() if leader != coordinator)
    producer.begin_transaction()
    for i in range(9):
        producer.produce(topic, value=b"kept-%d" % i, partition=i % 3)
    assert producer.flush(30) == 0
    cluster.brokers[victim].kill()  # a leader of the transaction's partitions, not its coordinator
    try:
        producer.commit_transaction(60)  # the coordinator retries that marker at the partition's new leader
        [committed] = wait_until(lambda: _found(read_values(cluster, topic, 3, "read_committed", timeout=5)), 60,
                                 "the transaction's markers on every partition")
        assert sorted(committed) == sorted(b"kept-%d" % i for i in range(9))
        assert f"writing the marker of {txn_id!r}" in cluster.output(coordinator), "no marker had to be retried"
    finally:
        cluster.brokers[victim].start()
        wait_until(lambda: len(admin(cluster).list_topics(timeout=10).brokers) == 3, 60, f"broker {victim} back")


def test_coordinator_killed_mid_transaction_the_new_one_aborts_it_and_the_producer_goes_on(cluster):
    topic = create_topic(cluster, 3)
    txn_id = "txn-killed"
    producer = txn_producer(cluster, txn_id, **{"transaction.timeout.ms": 10000})
    coordinator = coordinator_of(cluster, "__transaction_state", txn_id, TXN_PARTITIONS)
    assert coordinator in (1, 2, 3)
    producer.begin_transaction()
    for i in range(9):
        producer.produce(topic, value=b"open-%d" % i, partition=i % 3)
    assert producer.flush(30) == 0  # in the partitions (acks=all), with no EndTxn yet

    cluster.brokers[coordinator].kill()
    try:
        wait_until(lambda: coordinator_of(cluster, "__transaction_state", txn_id, TXN_PARTITIONS)
                   not in (coordinator, -1), 60, "a new transaction coordinator")
        # The new coordinator finds the transaction Ongoing and aborts it on its timeout (10 s from its start):
        # read_committed then reaches the high watermark of every partition, with none of its records.
        [committed] = wait_until(lambda: _found(read_values(cluster, topic, 3, "read_committed", timeout=5)), 90,
                                 "the open transaction to be aborted")
        assert not any(v.startswith(b"open") for v in committed), "an aborted transaction is visible"
        new_coordinator = coordinator_of(cluster, "__transaction_state", txn_id, TXN_PARTITIONS)
        assert f"transactional id {txn_id!r} timed out" in cluster.output(new_coordinator)
        everything = read_values(cluster, topic, 3, "read_uncommitted")
        assert sorted(v for v in everything if v.startswith(b"open")) == [b"open-%d" % i for i in range(9)]

        # The application starts again with the same transactional id: it fences the old producer and goes on.
        again = txn_producer(cluster, txn_id, **{"transaction.timeout.ms": 10000})
        again.begin_transaction()
        for i in range(6):
            again.produce(topic, value=b"after-%d" % i, partition=i % 3)
        again.commit_transaction(60)
        committed = read_values(cluster, topic, 3, "read_committed")
        assert committed is not None and sorted(committed) == sorted(b"after-%d" % i for i in range(6))
        with pytest.raises(KafkaException) as fenced:  # the old instance is fenced (its epoch was bumped twice)
            producer.commit_transaction(30)
        assert fenced.value.args[0].fatal(), fenced.value
    finally:
        cluster.brokers[coordinator].start()


def _ask_for_coordinator(consumer, topic: str) -> bool:
    """OffsetFetch needs the group's coordinator: the first FindCoordinator creates __consumer_offsets."""
    try:
        consumer.committed([TopicPartition(topic, 0)], timeout=5)
    except KafkaException:
        pass
    return True


def _all_led(cluster, topic: str) -> bool:
    found = leaders(cluster, topic)
    return bool(found) and -1 not in found.values()


def _found(value):
    """For wait_until: a one-tuple (truthy) once `value` is not None, even when it is empty."""
    return None if value is None else (value,)


def _poll_into(consumer, out: list) -> bool:
    message = consumer.poll(0.5)
    if message is not None and not message.error():
        out.append(message.value())
    return True
