"""What aiokafka users reach for, against a real broker: seeks that win over a pending offset reset,
subscribe(pattern=), (de)serializers, commit metadata, seek_to_committed, invalid topic names."""

import asyncio
import json
import time

import pytest

import kafkalite_client.consumer as consumer_module
from kafkalite_client import (
    Admin, Consumer, OffsetAndMetadata, Producer, RecordDeserializationError, RetryPolicy, TopicPartition,
)
from kafkalite_client.errors import InvalidTopicError
from kafkalite_client.retry import ERROR_HEADER

FAST = dict(heartbeat_interval_ms=100, session_timeout_ms=6000, auto_offset_reset="earliest",
            metadata_check_interval_ms=300)


async def produce(bootstrap, topic, values, **kwargs):
    async with Producer(bootstrap, linger_ms=1) as p:
        futures = [await p.enqueue(topic, v, **kwargs) for v in values]
        await p.flush()
    return [f.result() for f in futures]


async def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def read(consumer, count, timeout=10.0):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        for records in (await consumer.getmany(timeout_ms=500)).values():
            out += records
    return out


# A seek wins over a pending reset --------------------------------------------------------------------

class HoldFirstListOffsets:
    """Stands in for the consumer's ListOffsets lookup. The first call (the background offset reset that
    assigning a partition starts) gets its answer from the broker, but hands it back only when released:
    the reset's answer then arrives after whatever the test did meanwhile. Later calls pass through."""

    def __init__(self, monkeypatch):
        self.real = consumer_module.list_offsets
        self.calls = 0
        self.asked = asyncio.Event()
        self.release = asyncio.Event()
        self.answered = asyncio.Event()
        monkeypatch.setattr(consumer_module, "list_offsets", self)

    async def __call__(self, cluster, timestamps, **kwargs):
        self.calls += 1
        if self.calls > 1:
            return await self.real(cluster, timestamps, **kwargs)
        answer = await self.real(cluster, timestamps, **kwargs)
        self.asked.set()
        await self.release.wait()
        # The caller applies the answer in the step this returns in; `answered` is set after that.
        asyncio.get_running_loop().call_soon(self.answered.set)
        return answer

    async def deliver(self) -> None:
        self.release.set()
        await asyncio.wait_for(self.answered.wait(), 10)


@pytest.mark.parametrize("how", ["seek", "seek_to_beginning", "seek_to_end", "seek_to_committed"])
async def test_a_seek_wins_over_the_offset_reset_under_way(bootstrap, new_topic, monkeypatch, how):
    topic = await new_topic(1)
    await produce(bootstrap, topic, [f"v{i}" for i in range(10)])
    tp = TopicPartition(topic, 0)
    held = HoldFirstListOffsets(monkeypatch)
    # The reset goes the other way from the seek, so the position shows which one won.
    reset = "earliest" if how == "seek_to_end" else "latest"
    async with Consumer(bootstrap_servers=bootstrap, group_id=f"g-{topic}", enable_auto_commit=False,
                        auto_offset_reset=reset) as c:
        c.assign([tp])
        await asyncio.wait_for(held.asked.wait(), 10)  # the reset asked the broker; its answer is held
        if how == "seek":
            c.seek(tp, 4)
            expected = 4
        elif how == "seek_to_beginning":
            await c.seek_to_beginning(tp)
            expected = 0
        elif how == "seek_to_end":
            await c.seek_to_end(tp)
            expected = 10
        else:
            await c.commit({tp: 6})
            assert await c.seek_to_committed(tp) == {tp: 6}
            expected = 6
        await held.deliver()
        assert await c.position(tp) == expected
        if expected < 10:
            got = await c.getmany(tp, timeout_ms=5000, max_records=1)
            assert [r.offset for r in got[tp]] == [expected]


async def test_assign_seek_to_beginning_getmany_reads_from_the_start(bootstrap, new_topic):
    topic = await new_topic(1)
    await produce(bootstrap, topic, ["a", "b", "c"])
    tp = TopicPartition(topic, 0)
    async with Consumer(bootstrap_servers=bootstrap) as c:  # auto_offset_reset="latest"
        c.assign([tp])
        await c.seek_to_beginning(tp)
        assert [r.value for r in await read(c, 3)] == [b"a", b"b", b"c"]


async def test_a_later_seek_wins_over_an_earlier_seek_to_still_under_way(bootstrap, new_topic, monkeypatch):
    topic = await new_topic(1)
    await produce(bootstrap, topic, [f"v{i}" for i in range(10)])
    tp = TopicPartition(topic, 0)
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
        c.assign([tp])
        assert await c.position(tp) == 0
        held = HoldFirstListOffsets(monkeypatch)
        seeking = asyncio.create_task(c.seek_to_end(tp))
        await asyncio.wait_for(held.asked.wait(), 10)
        c.seek(tp, 3)
        await held.deliver()
        await seeking
        assert await c.position(tp) == 3


# Invalid topic names ------------------------------------------------------------------------------------

async def test_an_invalid_topic_name_raises_at_the_first_answer(bootstrap):
    async with Producer(bootstrap) as p:
        lookups = 0
        real = p.cluster._refresh_one

        async def counting(name):
            nonlocal lookups
            lookups += 1
            return await real(name)

        p.cluster._refresh_one = counting
        with pytest.raises(InvalidTopicError, match="'bad topic!' is not a valid topic name"):
            await p.send("bad topic!", b"x")
        assert lookups == 1  # no waiting for a topic that cannot come
        with pytest.raises(InvalidTopicError):
            await p.send_and_wait("bad topic!", b"x")
        with pytest.raises(InvalidTopicError):
            await (await p.enqueue("bad topic!", b"x"))
        with pytest.raises(InvalidTopicError):
            await p.partitions_for("bad topic!")
    async with Consumer(bootstrap_servers=bootstrap) as c:
        with pytest.raises(InvalidTopicError):
            await c.end_offsets([("bad topic!", 0)])


# subscribe(pattern=...) ------------------------------------------------------------------------------

async def test_subscribe_by_pattern_follows_matching_topics(bootstrap, request):
    prefix = f"pattern-{request.node.name[-20:]}"
    async with Admin(bootstrap) as admin:
        for name in (f"{prefix}-a", f"{prefix}-b", f"not-{prefix}-x"):
            await admin.create_topic(name, 1)
    for name in (f"{prefix}-a", f"{prefix}-b", f"not-{prefix}-x"):
        await produce(bootstrap, name, [name])
    seen = []
    c = Consumer(bootstrap_servers=bootstrap, group_id=f"g-{prefix}", **FAST)
    c.subscribe(pattern=rf"{prefix}-\w+")
    await c.start()

    async def drain():
        async for r in c:
            seen.append(r.value.decode())

    task = asyncio.create_task(drain())
    try:
        await wait_until(lambda: sorted(seen) == [f"{prefix}-a", f"{prefix}-b"])
        assert c.subscription() == {f"{prefix}-a", f"{prefix}-b"}
        # A topic created later that matches joins the subscription at the next metadata check.
        async with Admin(bootstrap) as admin:
            await admin.create_topic(f"{prefix}-c", 2)
        await produce(bootstrap, f"{prefix}-c", [f"{prefix}-c"])
        await wait_until(lambda: f"{prefix}-c" in seen)
        assert c.subscription() == {f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"}
        assert {tp.topic for tp in c.assignment()} == c.subscription()
        assert f"not-{prefix}-x" not in seen  # matched from the start of the name, as aiokafka's
    finally:
        c.stop()
        await task
        await c.close()


async def test_a_pattern_that_matches_nothing_yet_waits_for_its_topics(bootstrap, request):
    prefix = f"later-{request.node.name[-20:]}"
    async with Consumer(bootstrap_servers=bootstrap, group_id=f"g-{prefix}", **FAST) as c:
        c.subscribe(pattern=prefix)
        assert await c.getmany(timeout_ms=200) == {} and c.subscription() == set()
        await produce(bootstrap, f"{prefix}-new", ["first"])  # auto-created
        got = await read(c, 1)
        assert [(r.topic, r.value) for r in got] == [(f"{prefix}-new", b"first")]
        assert c.subscription() == {f"{prefix}-new"}


@pytest.mark.parametrize("exclude", [True, False])
async def test_a_pattern_skips_internal_topics_unless_asked(bootstrap, new_topic, exclude):
    topic = await new_topic(1)
    async with Consumer(bootstrap_servers=bootstrap, group_id=f"g-{topic}") as c:  # makes __consumer_offsets
        await c.commit({(topic, 0): 0})
    c = Consumer(bootstrap_servers=bootstrap, group_id=f"g2-{topic}", exclude_internal_topics=exclude, **FAST)
    c.subscribe(pattern=f"(__consumer_offsets|{topic})$")
    await c.start()
    try:
        expected = {topic} if exclude else {topic, "__consumer_offsets"}
        assert c.subscription() == expected
    finally:
        await c.close()


def test_subscribe_refuses_topics_and_a_pattern_together():
    c = Consumer(group_id="g")
    with pytest.raises(ValueError, match="topics or a pattern, not both"):
        c.subscribe(["a"], pattern="b.*")
    with pytest.raises(ValueError, match="retry="):
        Consumer(group_id="g", retry=RetryPolicy()).subscribe(pattern="b.*")


# Serializers and deserializers --------------------------------------------------------------------------

async def test_serializers_and_deserializers_round_trip(bootstrap, new_topic):
    topic = await new_topic(1)
    async with Producer(bootstrap, key_serializer=str.encode,
                        value_serializer=lambda v: json.dumps(v).encode()) as p:
        await p.send(topic, {"n": 1}, key="a")
        await p.send_and_wait(topic, {"n": 2}, key="b")
        await (await p.enqueue(topic, [3], key="c"))
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                        key_deserializer=bytes.decode, value_deserializer=json.loads) as c:
        c.assign([(topic, 0)])
        records = await read(c, 3)
    assert [(r.key, r.value) for r in records] == [("a", {"n": 1}), ("b", {"n": 2}), ("c", [3])]


async def test_a_record_that_cannot_be_deserialized_stays_next_until_seeked_past(bootstrap, new_topic):
    topic = await new_topic(1)
    await produce(bootstrap, topic, ['{"n": 0}', "not json", '{"n": 2}'])
    tp = TopicPartition(topic, 0)
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                        value_deserializer=json.loads) as c:
        c.assign([tp])
        assert [r.value for r in await read(c, 1)] == [{"n": 0}]
        for _ in range(2):  # raised again on every read: nothing after it goes by unnoticed
            with pytest.raises(RecordDeserializationError, match=f"{topic}-0 offset 1.*seek to offset 2") as e:
                await c.getmany(timeout_ms=5000)
            assert (e.value.topic, e.value.partition, e.value.offset) == (topic, 0, 1)
        c.seek(tp, e.value.offset + 1)
        assert [r.value for r in await read(c, 1)] == [{"n": 2}]


async def test_run_parks_a_record_that_cannot_be_deserialized_as_it_was(bootstrap, new_topic):
    topic = await new_topic(1)
    await produce(bootstrap, topic, ["not json", '{"n": 1}'])
    handled = []
    async with Consumer(topic, bootstrap_servers=bootstrap, group_id=f"g-{topic}", value_deserializer=json.loads,
                        retry=RetryPolicy(max_attempts=1), **FAST) as c:
        async def each_message(record):
            handled.append(record.value)
            c.stop()

        await asyncio.wait_for(c.run(each_message), 20)
    assert handled == [{"n": 1}]
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as dlq:
        dlq.assign([(f"{topic}.dlq", 0)])
        [dead] = await read(dlq, 1)
    assert dead.value == b"not json"  # the bytes as they came, not a half-decoded value
    assert dead.header(ERROR_HEADER).startswith(b"RecordDeserializationError: cannot deserialize the value")


async def test_run_without_retry_raises_the_deserialization_error(bootstrap, new_topic):
    topic = await new_topic(1)
    await produce(bootstrap, topic, ["not json"])

    async def each_message(record):
        raise AssertionError("not reached")

    async with Consumer(topic, bootstrap_servers=bootstrap, group_id=f"g-{topic}", value_deserializer=json.loads,
                        **FAST) as c:
        with pytest.raises(RecordDeserializationError, match="offset 0"):
            await asyncio.wait_for(c.run(each_message), 20)


# Commit metadata and seek_to_committed -------------------------------------------------------------------

async def test_commit_metadata_round_trips(bootstrap, new_topic):
    topic = await new_topic(1)
    tp = TopicPartition(topic, 0)
    group = f"g-{topic}"
    async with Consumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False) as c:
        c.assign([tp])
        await c.commit({tp: OffsetAndMetadata(2, "checkpoint-a")})
        got = await c.committed(tp)
        assert (got, got.offset, got.metadata) == (2, 2, "checkpoint-a")
        await c.commit({tp: (3, "checkpoint-b")})  # aiokafka's (offset, metadata) pair
        assert repr(await c.committed(tp)) == "OffsetAndMetadata(offset=3, metadata='checkpoint-b')"
        await c.commit({tp: 4})
        got = await c.committed(tp)
        assert got == 4 and got.metadata == ""
        await c.commit({tp: OffsetAndMetadata(5, "from-c")})
    async with Admin(bootstrap) as admin:
        assert (await admin.list_group_offsets(group))[tp].metadata == "from-c"


async def test_seek_to_committed_moves_only_partitions_with_a_commit(bootstrap, new_topic):
    topic = await new_topic(2)
    await produce(bootstrap, topic, [f"v{i}" for i in range(6)], partition=0)
    await produce(bootstrap, topic, [f"w{i}" for i in range(6)], partition=1)
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    async with Consumer(bootstrap_servers=bootstrap, group_id=f"g-{topic}", enable_auto_commit=False,
                        auto_offset_reset="earliest") as c:
        c.assign([tp0, tp1])
        await c.commit({tp0: OffsetAndMetadata(4, "m")})
        c.seek(tp1, 1)
        assert await c.seek_to_committed() == {tp0: 4, tp1: None}
        assert (await c.position(tp0), await c.position(tp1)) == (4, 1)
        got = await c.getmany(tp0, timeout_ms=5000)
        assert [r.value for r in got[tp0]] == [b"v4", b"v5"]
    with pytest.raises(ValueError, match="needs a group_id"):
        await Consumer(bootstrap_servers=bootstrap).seek_to_committed()
