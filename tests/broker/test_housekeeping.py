"""The broker's periodic housekeeping: retention, compaction and checkpoints run in a worker thread, one
partition at a time, while the event loop keeps serving; writers to that partition wait in arrival order."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from kafkalite.app import App as Broker
from kafkalite.replication.housekeeping import Turnstile
from kafkalite.config import BrokerConfig
from kafkalite.protocol.record_batch import build_batch, iter_batches


def make_broker(tmp_path, interval_ms: int) -> Broker:
    config = BrokerConfig(data_dir=str(tmp_path))
    config.set("offsets.topic.num.partitions", 1)
    config.set("log.retention.check.interval.ms", interval_ms)
    return Broker(config)


async def append(broker: Broker, topic: str, batch: bytes) -> int:
    """What the Produce handler does: wait for the turnstile, then append before the next await."""
    _, result = await broker.replicas.append(topic, 0, memoryview(bytearray(batch)))
    return result.base_offset


class BlockingHousekeep:
    """Stands in for PartitionLog.housekeep: blocks its worker thread until released."""

    def __init__(self, plog):
        self.plog = plog
        self.started = threading.Event()
        self.release = threading.Event()
        self.thread: int | None = None
        self.log_closed_at_end: bool | None = None

    def __call__(self, now_ms: int) -> None:
        self.thread = threading.get_ident()
        self.started.set()
        assert self.release.wait(20), "never released"
        self.log_closed_at_end = self.plog.closed

    async def wait_started(self) -> None:
        for _ in range(500):
            if self.started.is_set():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("housekeeping never reached the partition")


@pytest.mark.timeout(60)
async def test_retention_runs_periodically_beside_appends(tmp_path):
    broker = make_broker(tmp_path, 100)
    await broker.start()
    try:
        await broker.metadata.create_topic("old", 1, {"segment.bytes": "2048", "retention.ms": "60000"})
        plog = broker.logs.partition("old", 0)
        old = int(time.time() * 1000) - 3_600_000
        for i in range(50):  # an hour old: every closed segment is past retention.ms
            await append(broker, "old", build_batch([(None, b"x" * 200)], timestamps=old))
        deadline = time.monotonic() + 10
        while plog.log_start_offset == 0 and time.monotonic() < deadline:
            # Keep appending and reading while housekeeping runs: neither may be disturbed.
            await append(broker, "old", build_batch([(None, b"y" * 200)], timestamps=old))
            assert plog.read(plog.log_start_offset, 1 << 20)
            await asyncio.sleep(0.02)
        assert plog.log_start_offset > 0, "retention never ran"
        end = plog.log_end_offset
        assert plog.read(plog.log_start_offset, 1 << 20), "what is left must still be readable"
        assert plog.segment_count >= 1 and end > plog.log_start_offset
        for _ in range(500):  # retention is done; let its checkpoint finish too
            if not broker.housekeeping.working:
                break
            await asyncio.sleep(0.01)
        assert not plog._retired, "segments removed by retention were left open"
    finally:
        await broker.stop()


@pytest.mark.timeout(60)
async def test_compaction_keeps_a_busy_compacted_partition_to_a_few_segments(tmp_path):
    broker = make_broker(tmp_path, 3_600_000)  # no periodic run: the test starts the rounds, beside its appends
    await broker.start()
    try:
        # Any dirt makes a round due, so the last round below compacts everything that is closed.
        await broker.metadata.create_topic("latest", 1, {"cleanup.policy": "compact", "segment.bytes": "1024",
                                               "min.cleanable.dirty.ratio": "0.01"})
        plog = broker.logs.partition("latest", 0)
        newest = {}
        rolled = set()
        round_ = None
        for i in range(600):  # about 100 segments' worth of overwrites of 5 keys
            key, value = b"k%d" % (i % 5), b"v%d-" % i + b"x" * 100
            await append(broker, "latest", build_batch([(key, value)], timestamps=int(time.time() * 1000) - 1000))
            newest[key] = value
            rolled.update(seg.base_offset for seg in plog._segments)
            if i % 50 == 0 and (round_ is None or round_.done()):
                round_ = asyncio.create_task(broker.housekeeping.run_round())
            await asyncio.sleep(0)
        await round_
        await broker.housekeeping.run_round()  # a last round once the appends are over
        assert len(rolled) > 50
        assert plog.segment_count < 10, "compacted segments piled up instead of merging"
        got = {}
        offset = plog.log_start_offset
        while offset < plog.log_end_offset:
            for chunk in plog.read(offset, 1 << 20):
                for batch in iter_batches(chunk):
                    for record in batch.records():
                        got[record.key] = record.value
                    offset = max(offset, batch.next_offset)
        assert got == newest
    finally:
        await broker.stop()


@pytest.mark.timeout(60)
async def test_housekeeping_runs_in_a_thread_and_holds_only_its_partitions_writers(tmp_path):
    broker = make_broker(tmp_path, 3_600_000)  # no periodic run: the test starts one
    await broker.start()
    try:
        await broker.metadata.create_topic("busy", 1, {})
        await broker.metadata.create_topic("other", 1, {})
        busy = broker.logs.partition("busy", 0)
        blocker = busy.housekeep = BlockingHousekeep(busy)
        round_ = asyncio.create_task(broker.housekeeping.run_round())
        await blocker.wait_started()
        assert blocker.thread != threading.get_ident(), "housekeeping ran on the event loop"

        # Writers to the busy partition queue up; the loop and other partitions go on.
        writers = [asyncio.create_task(append(broker, "busy", build_batch([(None, b"%d" % i)]))) for i in range(5)]
        assert await append(broker, "other", build_batch([(None, b"free")])) == 0
        await asyncio.sleep(0.2)
        assert not any(w.done() for w in writers), "a writer changed the log under housekeeping"
        assert busy.log_end_offset == 0
        assert busy.read(0, 1 << 20) == []  # reads are served meanwhile

        blocker.release.set()
        assert await asyncio.gather(*writers) == [0, 1, 2, 3, 4], "writers passed out of arrival order"
        await round_
        assert blocker.log_closed_at_end is False
    finally:
        blocker.release.set()
        await broker.stop()


@pytest.mark.timeout(60)
async def test_stop_waits_for_the_housekeeping_thread_before_closing_logs(tmp_path):
    broker = make_broker(tmp_path, 3_600_000)
    await broker.start()
    await broker.metadata.create_topic("t", 1, {})
    plog = broker.logs.partition("t", 0)
    blocker = plog.housekeep = BlockingHousekeep(plog)
    broker._tasks.append(asyncio.create_task(broker.housekeeping.run_round()))
    await blocker.wait_started()
    stopping = asyncio.create_task(broker.stop())
    await asyncio.sleep(0.2)
    assert not stopping.done(), "stop() did not wait for the housekeeping thread"
    blocker.release.set()
    await stopping
    assert blocker.log_closed_at_end is False, "the logs were closed while housekeeping still worked on one"


async def test_a_cancelled_writer_keeps_its_place_until_those_ahead_are_done():
    turnstile = Turnstile()
    passed = []

    async def writer(name):
        await turnstile.pass_through()
        passed.append(name)

    release = asyncio.Event()

    async def housekeeping():
        async with turnstile.hold():
            await release.wait()

    holder = asyncio.create_task(housekeeping())
    await asyncio.sleep(0)
    assert turnstile.busy()
    first, second, third = (asyncio.create_task(writer(n)) for n in ("first", "second", "third"))
    await asyncio.sleep(0.05)
    second.cancel()  # e.g. its connection closed
    await asyncio.sleep(0.05)
    assert passed == [], "a cancelled writer let those behind it pass before housekeeping ended"
    release.set()
    await asyncio.gather(holder, first, third)
    assert second.cancelled()
    assert passed == ["first", "third"]
    assert not turnstile.busy()
