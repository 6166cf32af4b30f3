"""fsync group commit: concurrent acks=all appends share fsyncs and every waiter returns."""

import asyncio
import threading

import pytest

from kafkalite.broker.broker import FsyncThreads, GroupCommit
from kafkalite.log.manager import LogManager
from kafkalite.protocol.record_batch import build_batch


@pytest.mark.timeout(30)
@pytest.mark.parametrize("threads", ["to_thread", "fsync_threads"])
async def test_concurrent_waiters_all_become_durable(tmp_path, threads):
    logs = LogManager(str(tmp_path))
    logs.open()
    logs.create_topic("t", 1, {})
    plog = logs.partition("t", 0)
    pool = FsyncThreads(count=2)
    commit = GroupCommit(plog) if threads == "to_thread" else GroupCommit(plog, pool.run)
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
    pool.stop()


@pytest.mark.timeout(30)
async def test_fsync_threads_hand_back_results_and_errors():
    pool = FsyncThreads(count=2)
    try:
        assert await pool.run(threading.get_ident) != threading.get_ident(), "ran on the event loop"
        assert await asyncio.gather(*(pool.run(lambda i=i: i * i) for i in range(50))) == [i * i for i in range(50)]

        def fails():
            raise OSError(5, "Input/output error")

        with pytest.raises(OSError, match="Input/output"):
            await pool.run(fails)
        assert await pool.run(lambda: "still serving") == "still serving"
    finally:
        pool.stop()
