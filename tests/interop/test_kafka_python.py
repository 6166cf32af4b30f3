"""kafka-python 3.x against a live kafkalite broker (it enables idempotence by default and checks CRCs)."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

pytestmark = pytest.mark.interop

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]
PER_CODEC = 30
PARTITIONS = 3


def produce(bootstrap: str, topic: str, prefix: str, codecs) -> dict[tuple[int, int], bytes]:
    acked = {}
    for codec in codecs:
        producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, acks="all", linger_ms=5)
        pending = []
        for i in range(PER_CODEC):
            value = f"{prefix}-{codec}-{i}".encode()
            pending.append((value, producer.send(topic, key=f"key-{i % 4}".encode(), value=value,
                                                 headers=[("codec", str(codec).encode())])))
        for value, fut in pending:
            meta = fut.get(timeout=30)
            acked[(meta.partition, meta.offset)] = value
        producer.close()
    return acked


def read_from(bootstrap: str, topic: str, starts: dict[int, int | None]) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, check_crcs=True)
    tps = [TopicPartition(topic, p) for p in starts]
    consumer.assign(tps)
    ends = consumer.end_offsets(tps)
    for tp in tps:
        consumer.seek(tp, starts[tp.partition] if starts[tp.partition] is not None else ends[tp])
    want = sum(ends[tp] - consumer.position(tp) for tp in tps)
    got = []
    deadline = time.monotonic() + 30
    while len(got) < want and time.monotonic() < deadline:
        for msgs in consumer.poll(timeout_ms=500).values():
            got.extend(msgs)
    consumer.close()
    assert len(got) == want
    return got


def test_kafka_python_round_trip(broker_process):
    bootstrap = broker_process.bootstrap
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic("kafka-python", num_partitions=PARTITIONS, replication_factor=1)])
    admin.close()

    acked = produce(bootstrap, "kafka-python", "a", CODECS[:3])
    broker_process.restart(clean=False)
    time.sleep(0.05)
    middle_ms = int(time.time() * 1000)
    time.sleep(0.05)
    acked.update(produce(bootstrap, "kafka-python", "b", CODECS[3:]))

    got = read_from(bootstrap, "kafka-python", {p: 0 for p in range(PARTITIONS)})
    assert {(m.partition, m.offset): m.value for m in got} == acked
    key_partitions = defaultdict(set)
    for m in got:
        key_partitions[m.key].add(m.partition)
        assert dict(m.headers)["codec"] == m.value.decode().split("-")[1].encode()
    assert all(len(ps) == 1 for ps in key_partitions.values())

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    found = consumer.offsets_for_times({TopicPartition("kafka-python", p): middle_ms for p in range(PARTITIONS)})
    consumer.close()
    later = read_from(bootstrap, "kafka-python",
                      {tp.partition: (ot.offset if ot else None) for tp, ot in found.items()})
    assert sorted(m.value for m in later) == sorted(v for v in acked.values() if v.startswith(b"b-"))
