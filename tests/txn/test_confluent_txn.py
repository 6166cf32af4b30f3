"""confluent-kafka (librdkafka) transactional producers against a live kafkalite broker: commit, abort, fencing,
and a kill -9 of the broker with a transaction left open."""

from __future__ import annotations

import time

import pytest

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.interop


def create_topic(bootstrap: str, name: str, partitions: int = 2) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(15)


def txn_producer(bootstrap: str, txn_id: str, **extra) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "acks": "all",
                         "linger.ms": 1, **extra})
    producer.init_transactions(15)
    return producer


def read_values(bootstrap: str, topic: str, partitions: int = 2) -> list[bytes]:
    """Every data record of the topic up to its current end (read_uncommitted: what is in the log)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "txn-reader", "enable.auto.commit": False,
                         "isolation.level": "read_uncommitted"})  # librdkafka defaults to read_committed
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
        tps = [TopicPartition(topic, p, 0) for p in range(partitions)]
        consumer.assign(tps)
        values = []
        deadline = time.monotonic() + 20

        def at_end() -> bool:  # positions, not message offsets: the last offsets hold markers
            return [tp.offset for tp in consumer.position([TopicPartition(topic, p) for p in range(partitions)])] \
                == [ends[p] for p in range(partitions)]

        while not at_end() and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                values.append(msg.value())
        return values
    finally:
        consumer.close()


def test_commit_and_abort(broker_process):
    bootstrap = broker_process.bootstrap
    create_topic(bootstrap, "txn-a")
    producer = txn_producer(bootstrap, "txn-commit-abort")
    producer.begin_transaction()
    for i in range(10):
        producer.produce("txn-a", value=f"committed-{i}".encode(), partition=i % 2)
    producer.commit_transaction(15)
    producer.begin_transaction()
    for i in range(5):
        producer.produce("txn-a", value=f"aborted-{i}".encode(), partition=i % 2)
    producer.flush(15)
    producer.abort_transaction(15)
    producer.begin_transaction()
    producer.produce("txn-a", value=b"committed-last", partition=0)
    producer.commit_transaction(15)
    values = read_values(bootstrap, "txn-a")  # read_uncommitted: the aborted records are in the log too
    assert sorted(v for v in values if v.startswith(b"aborted")) == [f"aborted-{i}".encode() for i in range(5)]
    assert sorted(v for v in values if v.startswith(b"committed")) == sorted(
        [f"committed-{i}".encode() for i in range(10)] + [b"committed-last"])


def test_second_instance_fences_the_first(broker_process):
    bootstrap = broker_process.bootstrap
    create_topic(bootstrap, "txn-f")
    zombie = txn_producer(bootstrap, "txn-fenced")
    zombie.begin_transaction()
    zombie.produce("txn-f", value=b"zombie", partition=0)
    zombie.flush(15)
    successor = txn_producer(bootstrap, "txn-fenced")  # aborts the zombie's open transaction, bumps the epoch
    successor.begin_transaction()
    successor.produce("txn-f", value=b"successor", partition=1)
    successor.commit_transaction(15)
    with pytest.raises(KafkaException) as raised:
        zombie.commit_transaction(15)
    assert raised.value.args[0].fatal(), raised.value.args[0]


def test_offsets_sent_to_a_transaction_count_only_once_it_commits(broker_process):
    bootstrap = broker_process.bootstrap
    create_topic(bootstrap, "txn-in", 1)
    plain = Producer({"bootstrap.servers": bootstrap})
    for i in range(6):
        plain.produce("txn-in", value=f"in-{i}".encode(), partition=0)
    assert plain.flush(15) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "txn-group", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition("txn-in", 0, 0)])
    producer = txn_producer(bootstrap, "txn-offsets")

    def committed() -> int:
        return consumer.committed([TopicPartition("txn-in", 0)], timeout=10)[0].offset

    for commit, position in [(True, 2), (False, 5), (True, 6)]:
        producer.begin_transaction()
        producer.send_offsets_to_transaction([TopicPartition("txn-in", 0, position)],
                                             consumer.consumer_group_metadata(), 15)
        if commit:
            producer.commit_transaction(15)
        else:
            producer.abort_transaction(15)
        assert committed() == (position if commit else 2)
    consumer.close()
    broker_process.restart(clean=False)  # kill -9: the committed offsets are rebuilt from the log
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "txn-group", "enable.auto.commit": False})
    assert consumer.committed([TopicPartition("txn-in", 0)], timeout=15)[0].offset == 6
    consumer.close()


def committed_reader(bootstrap: str, topic: str, partitions: int = 2) -> Consumer:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"rc-{time.monotonic_ns()}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    return consumer


def poll_values(consumer: Consumer, until, timeout: float = 20) -> list[bytes]:
    """Poll until `until(values)` holds or the deadline passes; returns what was read."""
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    while not until(values) and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is not None and not msg.error():
            values.append(msg.value())
    return values


def test_a_read_committed_consumer_never_sees_aborted_or_open_data(broker_process):
    bootstrap = broker_process.bootstrap
    create_topic(bootstrap, "txn-rc")
    producer = txn_producer(bootstrap, "txn-rc")
    producer.begin_transaction()
    for i in range(4):
        producer.produce("txn-rc", value=f"aborted-{i}".encode(), partition=i % 2)
    producer.flush(15)
    producer.abort_transaction(15)
    producer.begin_transaction()
    for i in range(4):
        producer.produce("txn-rc", value=f"open-{i}".encode(), partition=i % 2)
    producer.flush(15)  # written, not yet committed
    consumer = committed_reader(bootstrap, "txn-rc")
    # the open transaction holds the last stable offset back: what lies below it is the aborted data
    ends = [consumer.get_watermark_offsets(TopicPartition("txn-rc", p), timeout=10)[1] for p in range(2)]
    assert poll_values(consumer, lambda v: False, timeout=2) == []
    producer.commit_transaction(15)
    seen = poll_values(consumer, lambda v: len(v) >= 4)
    assert sorted(seen) == [f"open-{i}".encode() for i in range(4)]
    assert ends[0] > 0  # the aborted records and their marker are in the log all the same
    consumer.close()


def test_broker_killed_mid_transaction_comes_back_with_it_aborted_never_half_visible(tmp_path):
    from brokerproc import BrokerProcess

    broker = BrokerProcess(str(tmp_path / "data"), "--set", "transaction.abort.timed.out.transaction.cleanup."
                           "interval.ms=200", "--set", "transaction.state.log.num.partitions=2").start()
    try:
        bootstrap = broker.bootstrap
        create_topic(bootstrap, "txn-kill")
        producer = txn_producer(bootstrap, "txn-kill", **{"transaction.timeout.ms": 3000})
        producer.begin_transaction()
        producer.produce("txn-kill", value=b"committed", partition=0)
        producer.commit_transaction(15)
        producer.begin_transaction()
        for i in range(6):
            producer.produce("txn-kill", value=f"half-{i}".encode(), partition=i % 2)
        producer.flush(15)
        broker.restart(clean=False)  # kill -9 with the transaction open
        consumer = committed_reader(bootstrap, "txn-kill")
        partitions = [TopicPartition("txn-kill", p) for p in range(2)]
        seen: list[bytes] = []

        def caught_up(_values) -> bool:
            """The consumer is at the log end of both partitions: past the ABORT markers, which only the
            coordinator's timeout writes (until then the open transaction holds the stable offset back)."""
            seen.extend(poll_values(consumer, lambda v: False, timeout=0.3))
            highs = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions]
            return [tp.offset for tp in consumer.position(partitions)] == highs

        poll_values(consumer, caught_up)
        assert caught_up(None), "the open transaction was never aborted"
        assert seen == [b"committed"]  # none of the half-written records
        with pytest.raises(KafkaException):
            producer.commit_transaction(10)  # fenced: its transaction was aborted with a bumped epoch
        consumer.close()
    finally:
        broker.kill()
