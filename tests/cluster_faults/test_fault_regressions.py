"""Regression tests for the bugs the cluster fault harness found, each small enough to run in a second."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_harness  # noqa: E402,F401 - puts tests/ and tests/cluster on the path



from kafkalite.log.manager import LogManager
from kafkalite.metadata.image import BrokerInfo, MetadataDelta, MetadataImage, PartitionInfo, TopicImage
from kafkalite.protocol.record_batch import build_batch
from kafkalite.replication.durability import FsyncThreads
from kafkalite.replication.housekeeping import Housekeeping
from kafkalite.replication.replica_manager import ReplicaManager


class RecordingIsrWriter:
    def __init__(self):
        self.proposed: list[tuple[int, ...]] = []

    async def change_isr(self, topic, index, leader_epoch, isr):
        self.proposed.append(isr)
        return False


def leader_of_t0(tmp_path, live: tuple[int, ...]):
    logs = LogManager(str(tmp_path))
    logs.open()
    logs.create_topic("t", 1, {"kafkalite.durability": "interval"})
    writer = RecordingIsrWriter()
    fsync_threads = FsyncThreads(count=1)
    manager = ReplicaManager(1, logs, Housekeeping(lambda: [], lambda: 0), fsync_threads, lambda: 0,
                             isr_writer=writer)
    partition = PartitionInfo(replicas=(1, 2, 3), leader=1, leader_epoch=0, isr=(1, 2))
    image = MetadataImage().apply(MetadataDelta(
        topics={"t": TopicImage("t", uuid.uuid4(), (partition,))},
        brokers={n: BrokerInfo(n, f"127.0.0.{10 + n}", 9092) for n in live}))
    manager.apply_image(image)
    return manager, writer, logs, fsync_threads


@pytest.mark.timeout(30)
async def test_a_follower_that_is_not_a_live_broker_is_not_proposed_for_the_isr(tmp_path):
    """Found by the SIGSTOP fault: a broker that lost its lease (no brokers/<id> key any more) kept fetching, so
    the leader proposed it for the ISR, the controller took it out again as not live, and round it went: 135 ISR
    writes per partition in 30 s. Kafka refuses such a replica (KIP-841: only registered, unfenced brokers join
    the ISR); so does the leader now."""
    manager, writer, logs, fsync_threads = leader_of_t0(tmp_path, live=(1, 2))
    try:
        replica, _ = await manager.append("t", 0, memoryview(bytearray(build_batch([(None, b"v")]))))
        manager.follower_fetched(replica, 2, replica.log.log_end_offset)
        manager.follower_fetched(replica, 3, replica.log.log_end_offset)  # caught up, but not a live broker
        for _ in range(3):
            await asyncio.sleep(0)
        assert all(3 not in isr for isr in writer.proposed), writer.proposed
    finally:
        logs.close()
        fsync_threads.stop()


@pytest.mark.timeout(30)
async def test_a_caught_up_live_follower_is_proposed_for_the_isr(tmp_path):
    """The other side of the test above: a live broker that caught up is proposed (so that test can fail)."""
    manager, writer, logs, fsync_threads = leader_of_t0(tmp_path, live=(1, 2, 3))
    try:
        replica, _ = await manager.append("t", 0, memoryview(bytearray(build_batch([(None, b"v")]))))
        manager.follower_fetched(replica, 2, replica.log.log_end_offset)
        manager.follower_fetched(replica, 3, replica.log.log_end_offset)
        for _ in range(3):
            await asyncio.sleep(0)
        assert writer.proposed == [(1, 2, 3)]
    finally:
        logs.close()
        fsync_threads.stop()


@pytest.mark.timeout(60)
async def test_revoking_a_lease_that_is_gone_is_lease_expired_not_a_client_error(tmp_path):
    """Found by the etcd restart fault: a broker whose registration was refused (its old lease still held its key
    after a kill -9) revoked its new lease, then revoked it again on the way out; etcd's "requested lease not
    found" escaped the adapter as aetcd's ClientError, past BrokerSession.leave, and the broker died with a
    traceback instead of its one-line RegistrationError."""
    import shutil

    from brokerproc import missing

    if shutil.which("etcd") is None:
        missing("etcd is not installed (Debian package etcd-server)")
    from etcdproc import EtcdProcess

    from kafkalite.cluster.etcd import EtcdStore
    from kafkalite.cluster.store import LeaseExpired

    etcd = EtcdProcess(str(tmp_path / "etcd")).start()
    try:
        store = EtcdStore([("127.0.0.1", etcd.client_port)])
        lease = await store.grant_lease(3000)
        await store.revoke_lease(lease)
        with pytest.raises(LeaseExpired):
            await store.revoke_lease(lease)
        with pytest.raises(LeaseExpired):
            await store.keep_alive(lease)
        await store.close()
    finally:
        etcd.stop()


class _FakeWatch:
    def __init__(self, events):
        self.events = events

    def __aiter__(self):
        return self._iterate()

    async def _iterate(self):
        for event in self.events:
            yield event

    async def cancel(self):
        pass


class _FakeEtcdClient:
    """Creating a watch times out once (etcd restarting), then works."""

    def __init__(self, aetcd):
        self.aetcd, self.attempts = aetcd, 0

    async def watch_prefix(self, prefix, start_revision):
        self.attempts += 1
        if self.attempts == 1:
            raise self.aetcd.WatchTimeoutError()
        from types import SimpleNamespace

        kv = SimpleNamespace(key=prefix + b"k", value=b"v", mod_revision=start_revision, create_revision=start_revision)
        return _FakeWatch([SimpleNamespace(kind="PUT", kv=kv)])

    async def close(self):
        pass


@pytest.mark.timeout(30)
async def test_a_watch_whose_creation_times_out_is_resumed_not_ended():
    """Found by the etcd restart fault: while etcd restarts, creating the watch can time out (aetcd's
    WatchTimeoutError). It escaped EtcdStore.watch_prefix, the metadata-watch task of every broker that met it
    died silently, and their metadata froze for good: no controller was elected again, no topic could be made."""
    aetcd = pytest.importorskip("aetcd")
    from kafkalite.cluster.etcd import EtcdStore

    store = EtcdStore([("127.0.0.1", 1)])
    fake = _FakeEtcdClient(aetcd)

    async def connected():
        return fake

    store._connected = connected
    events = store.watch_prefix("p/", 7)
    event = await asyncio.wait_for(events.__anext__(), 10)
    await events.aclose()
    assert (event.kind, event.key, event.revision) == ("put", "p/k", 7) and fake.attempts == 2
