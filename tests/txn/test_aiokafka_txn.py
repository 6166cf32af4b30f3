"""aiokafka's transactional producer and read_committed consumer against a live kafkalite broker: a
consume-transform-produce step that commits, one that aborts."""

from __future__ import annotations

import asyncio

import pytest

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.interop


async def read_committed(bootstrap: str, topic: str, count: int, timeout: float = 20) -> list[bytes]:
    """Read from the start with isolation read_committed until `count` records or the log end is reached."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=100)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]  # read_committed: the last stable offset
        values: list[bytes] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(values) < count and await consumer.position(tp) < end and loop.time() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=200)
            values += [m.value for m in batch.get(tp, [])]
        return values
    finally:
        await consumer.stop()


async def test_consume_transform_produce_commit_and_abort(broker_process):
    bootstrap = broker_process.bootstrap
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("ai-in", 1, 1), NewTopic("ai-out", 1, 1)])
    finally:
        await admin.close()
    plain = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await plain.start()
    for i in range(4):
        await plain.send_and_wait("ai-in", f"in-{i}".encode(), partition=0)
    await plain.stop()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="ai-txn")
    await producer.start()
    consumer = AIOKafkaConsumer("ai-in", bootstrap_servers=bootstrap, group_id="ai-group",
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                isolation_level="read_committed")
    await consumer.start()
    try:
        tp = TopicPartition("ai-in", 0)
        for commit in (True, False):
            records = (await consumer.getmany(tp, timeout_ms=10_000, max_records=2)).get(tp, [])
            assert len(records) == 2
            async with producer.transaction() if commit else _aborting(producer):
                for record in records:
                    await producer.send("ai-out", record.value.upper(), partition=0)
                await producer.send_offsets_to_transaction({tp: records[-1].offset + 1}, "ai-group")
        assert (await consumer.committed(tp)) == 2  # the aborted step's offsets did not count
    finally:
        await consumer.stop()
        await producer.stop()
    assert await read_committed(bootstrap, "ai-out", 3) == [b"IN-0", b"IN-1"]


class _aborting:
    """A transaction that is aborted at the end of its block."""

    def __init__(self, producer: AIOKafkaProducer):
        self.producer = producer

    async def __aenter__(self):
        await self.producer.begin_transaction()

    async def __aexit__(self, *exc):
        await self.producer.abort_transaction()
        return False
