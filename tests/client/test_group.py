"""Consumer groups, push-style consumption and retries / dead letters against a real broker."""

import asyncio
import time

import pytest

from kafkalite_client import Consumer, Producer, RetryPolicy, TopicPartition
from kafkalite_client.retry import ATTEMPT_HEADER, ERROR_HEADER, ORIGINAL_OFFSET_HEADER, ORIGINAL_TOPIC_HEADER

FAST = dict(heartbeat_interval_ms=100, session_timeout_ms=6000, auto_offset_reset="earliest",
            metadata_check_interval_ms=500)


async def produce(bootstrap, topic, n, **kwargs):
    async with Producer(bootstrap, linger_ms=1) as p:
        futures = [await p.enqueue(topic, f"v{i}", key=f"k{i}", **kwargs) for i in range(n)]
        await p.flush()
    return [f.result() for f in futures]


async def wait_until(predicate, timeout=8.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
async def test_two_members_split_partitions_and_read_everything_once(bootstrap, new_topic, strategy):
    topic = await new_topic(4)
    await produce(bootstrap, topic, 80)
    group = f"g-{topic}"
    seen: list[tuple[int, int]] = []

    async def drain(c):
        async for r in c:
            seen.append((r.partition, r.offset))

    c1 = Consumer(topic, bootstrap_servers=bootstrap, group_id=group, partition_assignment_strategy=[strategy], **FAST)
    c2 = Consumer(topic, bootstrap_servers=bootstrap, group_id=group, partition_assignment_strategy=[strategy], **FAST)
    await c1.start()
    t1 = asyncio.create_task(drain(c1))
    await wait_until(lambda: len(c1.assignment()) == 4)
    await c2.start()
    t2 = asyncio.create_task(drain(c2))
    await wait_until(lambda: len(c1.assignment()) == 2 and len(c2.assignment()) == 2)
    assert c1.assignment().isdisjoint(c2.assignment())
    await wait_until(lambda: len(set(seen)) == 80)
    await produce(bootstrap, topic, 20)
    await wait_until(lambda: len(set(seen)) == 100)
    c1.stop(), c2.stop()
    await asyncio.gather(t1, t2)
    await c2.close()
    # c1 takes over everything when c2 leaves
    await wait_until(lambda: len(c1.assignment()) == 4)
    await c1.close()
    assert len(seen) == len(set(seen))  # auto-commit on revoke: nothing read twice


async def test_run_each_message_commits_handled_offsets(bootstrap, new_topic):
    topic = await new_topic(2)
    await produce(bootstrap, topic, 20)
    group = f"g-{topic}"
    handled = []
    async with Consumer(topic, bootstrap_servers=bootstrap, group_id=group, **FAST) as c:
        async def each_message(record):
            handled.append(record.value)
            if len(handled) == 20:
                c.stop()

        await asyncio.wait_for(c.run(each_message=each_message), 20)
    assert sorted(handled) == sorted(f"v{i}".encode() for i in range(20))
    async with Consumer(bootstrap_servers=bootstrap, group_id=group) as c:
        committed = {p: await c.committed((topic, p)) for p in (0, 1)}
    ends = await Consumer(bootstrap_servers=bootstrap).end_offsets([(topic, 0), (topic, 1)])
    assert committed == {p: ends[TopicPartition(topic, p)] for p in (0, 1)}


async def test_failing_handler_parks_records_on_retry_then_dlq(bootstrap, new_topic):
    topic = await new_topic(1)
    await produce(bootstrap, topic, 3)  # v0 always fails, v1 fails once, v2 succeeds
    group = f"g-{topic}"
    attempts: dict[bytes, int] = {}
    done = []
    policy = RetryPolicy(max_attempts=3, backoff_ms=200)
    async with Consumer(topic, bootstrap_servers=bootstrap, group_id=group, retry=policy, **FAST) as c:
        async def each_message(record):
            attempts[record.value] = attempts.get(record.value, 0) + 1
            if record.value == b"v0" or (record.value == b"v1" and attempts[b"v1"] == 1):
                raise ValueError(f"cannot handle {record.value!r}")
            done.append((record.topic, record.value))

        runner = asyncio.create_task(c.run(each_message=each_message))
        await wait_until(lambda: attempts.get(b"v0") == 3 and len(done) == 2)
        c.stop()
        await runner
        assert c.subscription() == {topic, f"{topic}.retry"}
    assert sorted(done) == [(topic, b"v2"), (f"{topic}.retry", b"v1")]
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as dlq:
        dlq.assign([(f"{topic}.dlq", 0)])
        got = await dlq.getmany(timeout_ms=5000)
        [dead] = got[TopicPartition(f"{topic}.dlq", 0)]
    assert dead.value == b"v0" and dead.key == b"k0"
    assert dead.header(ATTEMPT_HEADER) == b"3"
    assert dead.header(ERROR_HEADER) == b"ValueError: cannot handle b'v0'"
    assert dead.header(ORIGINAL_TOPIC_HEADER) == topic.encode() and dead.header(ORIGINAL_OFFSET_HEADER) == b"0"
    # Everything was handled or parked: the group's offsets are at the end of both topics.
    async with Consumer(bootstrap_servers=bootstrap, group_id=group) as c:
        assert await c.committed((topic, 0)) == 3
        assert await c.committed((f"{topic}.retry", 0)) == 3  # v0 twice, v1 once


async def test_retry_waits_for_backoff(bootstrap, new_topic):
    topic = await new_topic(1)
    await produce(bootstrap, topic, 1)
    times = []
    async with Consumer(topic, bootstrap_servers=bootstrap, group_id=f"g-{topic}",
                        retry=RetryPolicy(max_attempts=2, backoff_ms=700), **FAST) as c:
        async def each_message(record):
            times.append(time.monotonic())
            if len(times) == 1:
                raise RuntimeError("first try fails")
            c.stop()

        await asyncio.wait_for(c.run(each_message=each_message), 20)
    assert times[1] - times[0] >= 0.65
