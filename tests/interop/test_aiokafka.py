"""aiokafka against a live kafkalite broker (aiokafka checks CRCs: a CRC bug shows here)."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.interop

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]
PER_CODEC = 30
PARTITIONS = 3


async def produce(bootstrap: str, topic: str, prefix: str, codecs) -> list[tuple[int, int, bytes]]:
    acked = []
    for codec in codecs:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, acks="all",
                                    enable_idempotence=True, linger_ms=5)
        await producer.start()
        try:
            pending = []
            for i in range(PER_CODEC):
                value = f"{prefix}-{codec}-{i}".encode()
                fut = await producer.send(topic, key=f"key-{i % 4}".encode(), value=value,
                                          headers=[("codec", str(codec).encode())])
                pending.append((value, fut))
            for value, fut in pending:
                meta = await fut
                acked.append((meta.partition, meta.offset, value))
        finally:
            await producer.stop()
    return acked


async def read_from(bootstrap: str, topic: str, starts: dict[int, int]) -> list:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, check_crcs=True)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in starts]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, starts[tp.partition] if starts[tp.partition] is not None else ends[tp])
        want = sum(ends[tp] - consumer_position for tp, consumer_position in
                   [(tp, await consumer.position(tp)) for tp in tps])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < want and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for msgs in batches.values():
                got.extend(msgs)
        assert len(got) == want
        return got
    finally:
        await consumer.stop()


async def test_aiokafka_round_trip(broker_process):
    bootstrap = broker_process.bootstrap
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("aiokafka", num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()

    acked = await produce(bootstrap, "aiokafka", "a", CODECS[:3])
    broker_process.restart(clean=False)
    time.sleep(0.05)
    middle_ms = int(time.time() * 1000)
    time.sleep(0.05)
    acked += await produce(bootstrap, "aiokafka", "b", CODECS[3:])

    got = await read_from(bootstrap, "aiokafka", {p: 0 for p in range(PARTITIONS)})
    stored = {(m.partition, m.offset): m.value for m in got}
    assert stored == {(p, o): v for p, o, v in acked}
    key_partitions = defaultdict(set)
    for m in got:
        key_partitions[m.key].add(m.partition)
        assert dict(m.headers)["codec"] == m.value.decode().split("-")[1].encode()
    assert all(len(ps) == 1 for ps in key_partitions.values())

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        found = await consumer.offsets_for_times({TopicPartition("aiokafka", p): middle_ms for p in range(PARTITIONS)})
    finally:
        await consumer.stop()
    later = await read_from(bootstrap, "aiokafka",
                            {tp.partition: (ot.offset if ot else None) for tp, ot in found.items()})
    assert sorted(m.value for m in later) == sorted(v for v in stored.values() if v.startswith(b"b-"))
