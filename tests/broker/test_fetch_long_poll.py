"""Fetch's long poll on an in-process broker: it waits for data beyond what it found, reads again only the
partition that moved, and answers at min_bytes or at max_wait_ms."""

from __future__ import annotations

import asyncio

import pytest

from inproc import call_handler
from kafkalite.app import App
from kafkalite.config import BrokerConfig
from kafkalite.protocol.record_batch import build_batch, iter_batches

TOPIC = "t"


@pytest.fixture
async def app(tmp_path):
    config = BrokerConfig(data_dir=str(tmp_path / "data"))
    config.set("offsets.topic.num.partitions", 1)
    config.set("kafkalite.durability", "never")
    app = App(config)
    await app.start()
    await app.metadata.create_topic(TOPIC, 3, {})
    yield app
    await app.stop()


async def produce(app, index: int, value: bytes) -> None:
    await app.replicas.append(TOPIC, index, memoryview(bytearray(build_batch([(None, value)]))))


def fetch_body(min_bytes: int, max_wait_ms: int) -> dict:
    return {"replica_id": -1, "max_wait_ms": max_wait_ms, "min_bytes": min_bytes, "max_bytes": 1 << 20,
            "isolation_level": 0, "session_id": 0, "session_epoch": -1,
            "topics": [{"topic": TOPIC, "partitions": [
                {"partition": i, "current_leader_epoch": -1, "fetch_offset": 0, "last_fetched_epoch": -1,
                 "log_start_offset": -1, "partition_max_bytes": 1 << 20} for i in range(3)]}],
            "forgotten_topics_data": [], "rack_id": ""}


def values(answer: dict) -> dict[int, list[bytes]]:
    out = {}
    for part in answer["responses"][0]["partitions"]:
        out[part["partition_index"]] = [r.value for batch in iter_batches(part["records"] or b"")
                                        for r in batch.records()]
    return out


def counting_reads(app) -> list:
    """Count the consumer reads the Fetch handler makes, by partition."""
    reads = []
    read = app.replicas.read

    def counted(replica, offset, max_bytes):
        reads.append(replica.index)
        return read(replica, offset, max_bytes)

    app.replicas.read = counted
    return reads


@pytest.mark.timeout(30)
async def test_a_fetch_short_of_min_bytes_waits_for_more_data_and_reads_only_the_partition_that_moved(app):
    await produce(app, 0, b"first")
    reads = counting_reads(app)
    fetch = asyncio.ensure_future(call_handler(app.services, "Fetch", 12, fetch_body(min_bytes=200,
                                                                                   max_wait_ms=60_000)))
    while len(reads) < 3:  # the first pass has read every partition; the fetch now waits
        await asyncio.sleep(0)
    assert not fetch.done()
    await produce(app, 1, b"x" * 300)  # enough for min_bytes, on another partition
    answer = await fetch
    assert values(answer) == {0: [b"first"], 1: [b"x" * 300], 2: []}
    # The first pass read each partition once; the wake read partition 1 alone. (A wait on the fetch offset
    # rather than past the data found would have read partition 0 again and again until max_wait_ms.)
    assert sorted(reads) == [0, 1, 1, 2]


@pytest.mark.timeout(30)
async def test_a_fetch_short_of_min_bytes_answers_what_it_has_at_max_wait_without_reading_again(app):
    await produce(app, 2, b"only")
    reads = counting_reads(app)
    answer = await call_handler(app.services, "Fetch", 12, fetch_body(min_bytes=10_000, max_wait_ms=200))
    assert values(answer) == {0: [], 1: [], 2: [b"only"]}
    assert sorted(reads) == [0, 1, 2]
