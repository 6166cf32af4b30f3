"""confluent-kafka (librdkafka 2.x) against a live kafkalite broker."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.interop

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PER_CODEC = 40
PARTITIONS = 4


def produce_all(bootstrap: str, topic: str, codec: str, prefix: str) -> list[tuple[int, int, bytes]]:
    acked = []

    def delivered(err, msg):
        assert err is None, err
        acked.append((msg.partition(), msg.offset(), msg.value()))

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "compression.type": codec, "linger.ms": 5})
    for i in range(PER_CODEC):
        producer.produce(topic, key=f"key-{i % 5}", value=f"{prefix}-{codec}-{i}".encode(),
                         headers=[("codec", codec.encode()), ("seq", str(i).encode())], on_delivery=delivered)
    assert producer.flush(30) == 0
    return acked


def read_all(bootstrap: str, topic: str, starts: dict[int, int]) -> list:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused-assign-only",
                         "enable.auto.commit": False, "check.crcs": True})
    highs = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in starts}
    # -1 from offsets_for_times: nothing at or after the timestamp in that partition.
    starts = {p: off if off >= 0 else highs[p] for p, off in starts.items()}
    consumer.assign([TopicPartition(topic, p, off) for p, off in starts.items()])
    want = sum(highs[p] - starts[p] for p in starts)
    got = []
    deadline = time.monotonic() + 30
    while len(got) < want and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        got.append(msg)
    consumer.close()
    assert len(got) == want
    return got


def test_confluent_kafka_round_trip(broker_process):
    bootstrap = broker_process.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic("confluent", num_partitions=PARTITIONS, replication_factor=1)])
    futures["confluent"].result(10)

    acked = []
    for codec in CODECS[:3]:
        acked += produce_all(bootstrap, "confluent", codec, "a")
    broker_process.restart(clean=False)  # kill -9 in the middle
    time.sleep(0.1)
    middle_ms = int(time.time() * 1000)
    time.sleep(0.05)
    for codec in CODECS[3:]:
        acked += produce_all(bootstrap, "confluent", codec, "b")

    got = read_all(bootstrap, "confluent", {p: 0 for p in range(PARTITIONS)})  # OFFSET_BEGINNING
    stored = {(m.partition(), m.offset()): m.value() for m in got}
    assert all(stored[(p, off)] == value for p, off, value in acked), "an acknowledged message is missing"
    assert len(stored) == len(acked)
    key_partitions = defaultdict(set)
    for m in got:
        key_partitions[m.key()].add(m.partition())
        codec = m.value().decode().split("-")[1]
        assert dict(m.headers())["codec"] == codec.encode()
    assert all(len(ps) == 1 for ps in key_partitions.values())

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    found = consumer.offsets_for_times([TopicPartition("confluent", p, middle_ms) for p in range(PARTITIONS)], 10)
    consumer.close()
    later = read_all(bootstrap, "confluent", {tp.partition: tp.offset for tp in found})
    assert sorted(m.value() for m in later) == sorted(v for _, _, v in acked if v.startswith(b"b-"))
