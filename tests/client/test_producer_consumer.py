"""Our producer and consumer against a real kafkalite broker process."""

import asyncio
import time

import pytest

from kafkalite_client import (
    ClientClosedError, Consumer, KafkaConnectionError, Producer, TopicPartition, partition_for_key,
)
from kafkalite_client.errors import KafkaError, UnknownTopicOrPartitionError


async def read_all(bootstrap, topic, partitions, expected, **kwargs):
    out = []
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", **kwargs) as c:
        c.assign([(topic, p) for p in range(partitions)])
        deadline = time.monotonic() + 10
        while len(out) < expected and time.monotonic() < deadline:
            for records in (await c.getmany(timeout_ms=500)).values():
                out += records
    return out


async def test_send_returns_metadata_and_keys_follow_murmur2(bootstrap, new_topic):
    topic = await new_topic(5)
    async with Producer(bootstrap, linger_ms=1) as p:
        assert p.idempotent and p.producer_id >= 0
        metas = await asyncio.gather(*(p.send(topic, f"v{i}", key=f"key-{i}", timestamp=1_700_000_000_000 + i)
                                       for i in range(50)))
    for i, m in enumerate(metas):
        assert m.partition == partition_for_key(f"key-{i}".encode(), 5)
        assert m.timestamp == 1_700_000_000_000 + i and m.offset >= 0
    per_partition = {}
    for m in metas:
        per_partition.setdefault(m.partition, []).append(m.offset)
    assert all(sorted(o) == list(range(len(o))) for o in per_partition.values())
    records = await read_all(bootstrap, topic, 5, 50)
    assert sorted(r.value for r in records) == sorted(f"v{i}".encode() for i in range(50))
    for r in records:
        assert r.partition == partition_for_key(r.key, 5)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
async def test_compression_round_trips(bootstrap, new_topic, codec):
    topic = await new_topic(1)
    async with Producer(bootstrap, compression_type=codec) as p:
        futures = [await p.enqueue(topic, b"x" * 200 + str(i).encode(), headers={"n": str(i)}) for i in range(300)]
        await p.flush()
    assert [f.result().offset for f in futures] == list(range(300))
    records = await read_all(bootstrap, topic, 1, 300)
    assert [r.offset for r in records] == list(range(300))
    assert [r.header("n") for r in records] == [str(i).encode() for i in range(300)]


async def test_linger_and_batch_size_batch_records(bootstrap, new_topic):
    topic = await new_topic(1)
    async with Producer(bootstrap, linger_ms=50, batch_size=4096) as p:
        sent = []
        original = p._produce

        async def spy(node, batches):
            sent.extend(b.count for b in batches)
            await original(node, batches)

        p._produce = spy
        futures = [await p.enqueue(topic, b"y" * 100) for _ in range(200)]
        await asyncio.gather(*futures)
    assert sum(sent) == 200
    assert len(sent) <= 10 and max(sent) > 20  # ~35 records of 100 bytes per 4 KiB batch, not one per record


async def test_keyless_records_stick_to_one_partition_per_batch(bootstrap, new_topic):
    topic = await new_topic(4)
    async with Producer(bootstrap, linger_ms=20) as p:
        metas = await asyncio.gather(*(p.send(topic, b"z") for _ in range(30)))
    assert len({m.partition for m in metas}) == 1


async def test_acks_0_and_1(bootstrap, new_topic):
    topic = await new_topic(1)
    async with Producer(bootstrap, acks=0) as p:
        assert not p.idempotent
        m = await p.send(topic, b"a")
        assert m.offset == -1
    async with Producer(bootstrap, acks=1) as p:
        m = await p.send(topic, b"b")
        assert m.offset == 1
    assert [r.value for r in await read_all(bootstrap, topic, 1, 2)] == [b"a", b"b"]


async def test_closed_producer_and_bad_partition(bootstrap, new_topic):
    topic = await new_topic(2)
    p = Producer(bootstrap)
    with pytest.raises(UnknownTopicOrPartitionError, match="has no partition 7"):
        await p.send(topic, b"x", partition=7)
    await p.close()
    with pytest.raises(ClientClosedError):
        await p.send(topic, b"x")


async def test_unreachable_broker_error_is_a_sentence():
    p = Producer("127.0.0.1:1")
    with pytest.raises(KafkaConnectionError, match=r"^cannot connect to 127.0.0.1:1: connection refused$"):
        await p.start()
    await p.close()


async def test_producer_retries_across_a_broker_restart_without_duplicates(broker, new_topic):
    topic = await new_topic(2)
    async with Producer(broker.bootstrap, linger_ms=2, retry_backoff_ms=50) as p:
        first = [await p.enqueue(topic, f"a{i}", key=str(i)) for i in range(100)]
        await p.flush()
        broker.restart(clean=True)
        second = [await p.enqueue(topic, f"b{i}", key=str(i)) for i in range(100)]
        await asyncio.wait_for(p.flush(), 30)
    assert all(not f.exception() for f in first + second)
    records = await read_all(broker.bootstrap, topic, 2, 200)
    assert sorted(r.value for r in records) == sorted([f"a{i}".encode() for i in range(100)] +
                                                      [f"b{i}".encode() for i in range(100)])


async def test_assign_seek_offsets_for_times_pause_and_lag(bootstrap, new_topic):
    topic = await new_topic(2)
    async with Producer(bootstrap) as p:
        for i in range(10):
            await p.send(topic, f"m{i}", partition=0, timestamp=1_000_000 + i * 10)
        await p.send(topic, b"other", partition=1)
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="latest") as c:
        c.assign([tp0, tp1])
        assert await c.position(tp0) == 10
        await c.seek_to_beginning(tp0)
        assert await c.position(tp0) == 0
        got = await c.getmany(tp0, timeout_ms=3000, max_records=4)
        assert [r.value for r in got[tp0]] == [b"m0", b"m1", b"m2", b"m3"]
        assert c.lag(tp0) == 6
        found = await c.offsets_for_times({tp0: 1_000_045, tp1: 9_999_999_999_999})
        assert found[tp0] == (5, 1_000_050) and found[tp1] is None
        c.seek(tp0, found[tp0][0])
        got = await c.getmany(timeout_ms=3000)
        assert got[tp0][0].offset == 5
        c.pause(tp0)
        assert c.paused() == {tp0}
        await c.seek_to_end(tp0)
        c.seek(tp0, 8)
        assert await c.getmany(tp0, timeout_ms=300) == {}
        c.resume(tp0)
        got = await c.getmany(tp0, timeout_ms=3000)
        assert [r.offset for r in got[tp0]] == [8, 9]
        assert c.lag(tp0) == 0
        assert await c.end_offsets([tp0, tp1]) == {tp0: 10, tp1: 1}


async def test_async_for_and_manual_commit(bootstrap, new_topic):
    topic = await new_topic(1)
    async with Producer(bootstrap) as p:
        for i in range(5):
            await p.enqueue(topic, str(i))
    tp = TopicPartition(topic, 0)
    async with Consumer(bootstrap_servers=bootstrap, group_id=f"g-{topic}", enable_auto_commit=False,
                        auto_offset_reset="earliest") as c:
        c.assign([tp])
        seen = []
        async for record in c:
            seen.append(record.value)
            if len(seen) == 3:
                break
        await c.commit({tp: 3})
        assert await c.committed(tp) == 3
    async with Consumer(bootstrap_servers=bootstrap, group_id=f"g-{topic}", auto_offset_reset="earliest") as c:
        c.assign([tp])
        assert await c.position(tp) == 3


async def test_auto_commit_commits_only_handled_records(bootstrap, new_topic):
    topic = await new_topic(1)
    async with Producer(bootstrap) as p:
        for i in range(10):
            await p.enqueue(topic, str(i))
    tp = TopicPartition(topic, 0)
    group = f"g-{topic}"
    c = Consumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                 auto_commit_interval_ms=100, heartbeat_interval_ms=200)
    await c.start()
    seen = []
    async for record in c:
        seen.append(record.offset)
        if record.offset == 4:
            await asyncio.sleep(0.4)  # auto-commit runs while record 4 is in hand
            assert await c.committed(tp) == 4
            break
    await c.close()  # record 4 counts as handled once the loop left it
    async with Consumer(bootstrap_servers=bootstrap, group_id=group) as c2:
        assert await c2.committed(tp) == 5


async def test_a_failed_sender_fails_records_instead_of_hanging(bootstrap, new_topic):
    topic = await new_topic(1)
    async with Producer(bootstrap, linger_ms=50) as p:
        await p.send(topic, "before")

        def broken():
            raise RuntimeError("a bug in the sender")

        p._dispatch_ready = broken
        pending = await p.enqueue(topic, "stuck")
        p._wakeup.set()
        async with asyncio.timeout(10):
            with pytest.raises(KafkaError, match="sender failed"):
                await pending
            with pytest.raises(KafkaError, match="sender failed"):
                await p.send(topic, "after")
