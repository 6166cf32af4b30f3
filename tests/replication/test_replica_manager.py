"""The replica manager standalone: the high watermark, the waits on it, and what consumers may read."""

from __future__ import annotations

import asyncio
import threading

import pytest

from kafkalite.log.fs_faulty import FaultyFileSystem
from kafkalite.log.manager import LogManager
from kafkalite.metadata.image import BrokerInfo
from kafkalite.metadata.local import LocalMetadataStore
from kafkalite.protocol.record_batch import build_batch, iter_batches
from kafkalite.replication.durability import FsyncThreads
from kafkalite.replication.housekeeping import Housekeeping
from kafkalite.replication.replica_manager import NotServed, ReplicaManager

NODE = 1


class Standalone:
    """The services a standalone broker wires for its replicas (kafkalite/app.py), over a given file system."""

    def __init__(self, data_dir: str, fs=None, durability: str = "always"):
        self.logs = LogManager(data_dir, fs=fs)
        self.fsync_threads = FsyncThreads(count=2)
        self.replicas = ReplicaManager(NODE, self.logs, None, self.fsync_threads, lambda: 0)
        self.replicas.housekeeping = Housekeeping(lambda: [], lambda: 0)
        self.metadata = LocalMetadataStore(self.logs, BrokerInfo(NODE, "127.0.0.1", 9092))
        self.metadata.listeners.append(self.replicas.apply_image)
        self.durability = durability

    async def open(self) -> "Standalone":
        await asyncio.to_thread(self.logs.open)
        self.metadata.load("cluster")
        if "t" not in self.metadata.image.topics:
            await self.metadata.create_topic("t", 1, {"kafkalite.durability": self.durability})
        return self

    def close(self, clean: bool = True) -> None:
        if clean:
            self.logs.close()
        self.fsync_threads.stop()

    async def produce(self, value: bytes):
        """An acks=1 append: returns at once, without waiting for anything."""
        replica, result = await self.replicas.append("t", 0, memoryview(bytearray(build_batch([(None, value)]))))
        return replica, result

    def consume(self, offset: int = 0) -> list[tuple[int, bytes]]:
        replica = self.replicas.leader("t", 0)
        out = []
        for chunk in self.replicas.read(replica, offset, 1 << 20):
            for batch in iter_batches(chunk):
                out.extend((r.offset, r.value) for r in batch.records())
        return out


@pytest.mark.timeout(30)
async def test_acks_all_waiters_share_fsyncs_and_all_complete(tmp_path):
    broker = await Standalone(str(tmp_path)).open()
    plog = broker.logs.partition("t", 0)
    fsyncs = 0
    real_flush = plog.flush

    def counting_flush():
        nonlocal fsyncs
        fsyncs += 1
        return real_flush()

    plog.flush = counting_flush
    broker.replicas.apply_image(broker.metadata.image)  # (no change: the replica keeps its flusher)

    async def append_and_wait(i: int) -> int:
        await asyncio.sleep(0.001 * (i % 7))  # interleave appends with fsyncs in flight
        replica, result = await broker.produce(b"v%d" % i)
        assert await broker.replicas.replicated(replica, result.last_offset + 1)
        assert plog.flushed_offset > result.last_offset, "acknowledged before it was fsynced"
        return result.last_offset

    offsets = await asyncio.gather(*(append_and_wait(i) for i in range(200)))
    assert sorted(offsets) == list(range(200))
    assert broker.replicas.leader("t", 0).state.high_watermark == 200
    assert fsyncs < 200, "every append paid its own fsync: nothing was shared"
    broker.close()


@pytest.mark.timeout(30)
async def test_under_durability_always_consumers_see_only_fsynced_records(tmp_path):
    broker = await Standalone(str(tmp_path)).open()
    plog = broker.logs.partition("t", 0)
    release = threading.Event()
    real_flush = plog.flush

    def held_flush():
        assert release.wait(10)
        return real_flush()

    plog.flush = held_flush
    replica, result = await broker.produce(b"first")
    assert plog.log_end_offset == 1
    assert replica.state.high_watermark == 0
    assert broker.consume() == [], "a consumer read a record that is not fsynced yet"
    visible = asyncio.get_running_loop().create_future()
    broker.replicas.notify_after(replica, 0, visible, follower=False)
    assert not visible.done()
    release.set()
    assert await asyncio.wait_for(visible, 10)
    assert replica.state.high_watermark == 1
    assert broker.consume() == [(0, b"first")]
    broker.close()


@pytest.mark.timeout(30)
async def test_under_durability_interval_the_high_watermark_is_the_log_end(tmp_path):
    broker = await Standalone(str(tmp_path), durability="interval").open()
    replica, _ = await broker.produce(b"a")
    assert replica.state.high_watermark == 1 and replica.log.flushed_offset == 0
    assert broker.consume() == [(0, b"a")]
    broker.close()


@pytest.mark.timeout(60)
async def test_every_record_a_consumer_read_survives_a_power_cut(tmp_path):
    """RELIABILITY.md's promise: with the default durability, a consumer never reads what a power cut takes
    back. Records are appended with acks=1 (nobody waits for fsyncs) while a consumer reads whatever it may;
    after a cut that loses everything not fsynced, every record it read is still at its offset."""
    fs = FaultyFileSystem(seed=7)
    broker = await Standalone("/data", fs=fs).open()
    read: dict[int, bytes] = {}
    for i in range(300):
        await broker.produce(b"r%d" % i)
        if i % 10 == 0:
            await asyncio.sleep(0)  # let fsyncs finish now and then
            read.update(broker.consume(max(read, default=-1) + 1))
    plog = broker.logs.partition("t", 0)
    replica = broker.replicas.leader("t", 0)
    assert await asyncio.wait_for(replica.high_watermark.reached(300), 20)
    read.update(broker.consume(max(read, default=-1) + 1))
    # The last records stay unsynced for sure: fsyncs from now on wait (until after the cut).
    hold, real_flush = threading.Event(), plog.flush

    def held_flush():
        hold.wait(10)
        return real_flush()

    plog.flush = held_flush
    for _ in range(500):
        if not replica.flusher.busy:
            break
        await asyncio.sleep(0.01)
    for i in range(300, 320):
        await broker.produce(b"r%d" % i)
    read.update(broker.consume(max(read, default=-1) + 1))
    end = plog.log_end_offset
    assert read, "the consumer read nothing: the test proves nothing"
    assert len(read) < end, "every record was fsynced before the cut: the test proves nothing"
    broker.close(clean=False)
    fs.restart(lose_unsynced="all")
    hold.set()
    after = await Standalone("/data", fs=fs).open()
    kept = dict(after.consume())
    assert after.logs.partition("t", 0).log_end_offset < end, "the cut lost nothing: the injection did not work"
    for offset, value in read.items():
        assert kept.get(offset) == value, f"offset {offset} was read as {value!r} before the cut"
    after.close()


@pytest.mark.timeout(30)
async def test_a_deleted_topic_wakes_its_waiters_and_is_no_longer_served(tmp_path):
    broker = await Standalone(str(tmp_path)).open()
    replica = broker.replicas.leader("t", 0)
    waiting = asyncio.get_running_loop().create_future()
    broker.replicas.notify_after(replica, 10, waiting, follower=False)
    await broker.metadata.delete_topic("t")
    assert await asyncio.wait_for(waiting, 5) is False
    assert broker.replicas.moved_after(replica, 10, follower=False)  # (the long poll reads it again: gone)
    with pytest.raises(NotServed) as e:
        broker.replicas.leader("t", 0)
    assert e.value.code == 3  # UNKNOWN_TOPIC_OR_PARTITION
    broker.close()
