"""fsync group commit: concurrent acks=all appends share fsyncs and every waiter returns."""

import asyncio

import pytest

from kafkalite.broker.broker import GroupCommit
from kafkalite.log.manager import LogManager
from kafkalite.protocol.record_batch import build_batch


@pytest.mark.timeout(30)
async def test_concurrent_waiters_all_become_durable(tmp_path):
    logs = LogManager(str(tmp_path))
    logs.open()
    logs.create_topic("t", 1, {})
    plog = logs.partition("t", 0)
    commit = GroupCommit(plog)
    fsyncs = 0
    real_flush = plog.flush

    def counting_flush():
        nonlocal fsyncs
        fsyncs += 1
        return real_flush()

    plog.flush = counting_flush

    async def append_and_wait(i: int) -> int:
        await asyncio.sleep(0.001 * (i % 7))  # interleave appends with fsyncs in flight
        result = plog.append(bytearray(build_batch([(None, b"v%d" % i)])))
        await commit.durable(result.last_offset + 1)
        assert plog.flushed_offset > result.last_offset
        return result.last_offset

    offsets = await asyncio.gather(*(append_and_wait(i) for i in range(200)))
    assert sorted(offsets) == list(range(200))
    assert plog.flushed_offset == 200
    assert fsyncs < 200, "every append paid its own fsync: nothing was shared"
    logs.close()
