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
async def test_a_watch_whose_creation_times_out_is_resumed_not_ended(monkeypatch):
    """Found by the etcd restart fault: while etcd restarts, creating the watch can time out (aetcd's
    WatchTimeoutError). It escaped EtcdStore.watch_prefix, the metadata-watch task of every broker that met it
    died silently, and their metadata froze for good: no controller was elected again, no topic could be made."""
    aetcd = pytest.importorskip("aetcd")
    from kafkalite.cluster.etcd import EtcdStore

    import kafkalite.cluster.etcd as etcd_module

    store = EtcdStore([("127.0.0.1", 1)])
    fake = _FakeEtcdClient(aetcd)

    async def connected(_channel):
        return fake

    monkeypatch.setattr(etcd_module._Channel, "connected", connected)
    events = store.watch_prefix("p/", 7)
    event = await asyncio.wait_for(events.__anext__(), 10)
    await events.aclose()
    assert (event.kind, event.key, event.revision) == ("put", "p/k", 7) and fake.attempts == 2



class _StreamCutMidTransaction:
    """The first watch stream breaks after the first change of a two-key transaction; a watch resumed at that
    revision gets the whole transaction again, then the next one."""

    def __init__(self):
        self.starts: list[int] = []

    async def watch_prefix(self, prefix, start_revision):
        from types import SimpleNamespace

        def put(key, revision):
            return SimpleNamespace(kind="PUT", kv=SimpleNamespace(key=prefix + key, value=b"v", mod_revision=revision,
                                                                  create_revision=revision))

        self.starts.append(start_revision)
        if len(self.starts) == 1:
            return _BreakingWatch([put(b"a", 5)])
        return _FakeWatch([put(b"a", 5), put(b"b", 5), put(b"c", 6)])

    async def close(self):
        pass


class _BreakingWatch(_FakeWatch):
    async def _iterate(self):
        for event in self.events:
            yield event
        raise ConnectionError("stream reset")


@pytest.mark.timeout(30)
async def test_a_watch_stream_broken_in_the_middle_of_a_transaction_resumes_at_its_revision(monkeypatch):
    """Found by the SIGSTOP fault once the controller moved many leaders in one transaction: all its changes
    share a revision, and a stream resumed after the revision of the last change delivered lost the rest of
    the transaction. It resumes at that revision now, skipping what it delivered."""
    pytest.importorskip("aetcd")
    import kafkalite.cluster.etcd as etcd_module
    from kafkalite.cluster.etcd import EtcdStore

    store = EtcdStore([("127.0.0.1", 1)])
    fake = _StreamCutMidTransaction()

    async def connected(_channel):
        return fake

    monkeypatch.setattr(etcd_module._Channel, "connected", connected)
    events = store.watch_prefix("p/", 5)
    got = [await asyncio.wait_for(events.__anext__(), 10) for _ in range(3)]
    await events.aclose()
    assert [(e.key, e.revision) for e in got] == [("p/a", 5), ("p/b", 5), ("p/c", 6)]
    assert fake.starts == [5, 5]

def test_a_follower_behind_a_compacted_range_of_its_leader_catches_up():
    """Found by the power-loss fault: a broker restarted on a compacted topic fetched from an offset its leader
    had meanwhile compacted away; the leader answered (rightly, as Kafka does) with the next batch after the gap,
    the follower refused it because it did not start exactly at its log end (UnexpectedAppendOffset), asked again
    from the same offset, and never got back into the ISR. Kafka's follower refuses only a batch below its log
    end; so does kafkalite's now."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "log"))
    from logstore_helpers import batch, open_log, read_all

    from kafkalite.log import LogConfig
    from kafkalite.log.errors import UnexpectedAppendOffset
    from kafkalite.log.fs_faulty import FaultyFileSystem

    config = LogConfig(cleanup_policy="compact", segment_bytes=350, delete_retention_ms=1000)
    leader = open_log(FaultyFileSystem(), config)
    for i in range(40):
        leader.append(batch(f"v{i}".encode(), key=f"k{i % 3}".encode()), leader_epoch=0)
    follower = open_log(FaultyFileSystem(), config, path="/follower/t-0")
    follower.append_as_follower(b"".join(bytes(c) for c in leader.read(0, 200)))  # its first batches only
    behind = follower.log_end_offset
    leader.checkpoint()  # compaction cleans only what a checkpoint covers
    assert leader.compact(now_ms=10_000) > 0
    fetched = b"".join(bytes(c) for c in leader.read(behind, 1 << 20))
    first = next(iter(read_all(leader, behind)))
    assert first.base_offset > behind, "the test needs the follower's log end inside a compacted gap"
    while follower.log_end_offset < leader.log_end_offset:  # the fetcher's loop: fetch from the log end, append
        follower.append_as_follower(b"".join(bytes(c) for c in leader.read(follower.log_end_offset, 1 << 20)))
    later = [(r.offset, r.value) for b in read_all(follower, first.base_offset) for r in b.records()]
    assert later == [(r.offset, r.value) for b in read_all(leader, first.base_offset) for r in b.records()]
    with pytest.raises(UnexpectedAppendOffset):  # what starts below the log end is still refused
        follower.append_as_follower(fetched)


class _HeldPartitionReplicas:
    """A leader's replicas where partition 1 is under housekeeping until `release` is set: an append there
    waits (as ReplicaManager.writable_leader does). Records the order of the appends."""

    def __init__(self):
        from types import SimpleNamespace

        self.release = asyncio.Event()
        self.order: list[tuple[int, int]] = []  # (partition, base sequence)
        self._replica = SimpleNamespace(log=SimpleNamespace(config=SimpleNamespace(compact=False),
                                                            log_start_offset=0))

    def leader(self, topic, index):
        return self._replica

    async def append(self, topic, index, batch, acks=1, guard=None):
        from types import SimpleNamespace

        from kafkalite.protocol.record_batch import iter_batches

        if index == 1:
            await self.release.wait()
        self.order.append((index, next(iter(iter_batches(batch))).base_sequence))
        return self._replica, SimpleNamespace(base_offset=len(self.order) - 1, last_offset=len(self.order) - 1,
                                              log_append_time=-1)


@pytest.mark.timeout(30)
async def test_a_connections_produce_requests_append_in_the_order_they_were_sent():
    """Found by the power-loss run with the Java producer (compaction every 2 s): a Produce request waiting at
    one partition, where housekeeping ran, let the connection's next request append to another partition
    first. The idempotent producer's batch with sequence 15 landed before the one with sequence 0, which then
    got OUT_OF_ORDER_SEQUENCE_NUMBER; the client bumped its epoch and wrote it after the later records. Kafka
    handles a connection's requests one at a time; kafkalite's appends now keep the connection's order."""
    from types import SimpleNamespace

    from kafkalite.broker.handlers import produce

    replicas = _HeldPartitionReplicas()
    services = SimpleNamespace(appends_done={}, refused_before_append={})
    ctx = SimpleNamespace(replicas=replicas, services=services, connection_id=424242)

    def request(*parts):
        data = [{"index": p, "records": memoryview(bytearray(build_batch(
            [(None, b"v")], producer_id=7, producer_epoch=0, base_sequence=seq)))} for p, seq in parts]
        return {"acks": 1, "timeout_ms": 1000, "transactional_id": None,
                "topic_data": [{"name": "t", "partition_data": data}]}

    first = asyncio.ensure_future(produce.handle(ctx, request((1, 0), (0, 0))))
    second = asyncio.ensure_future(produce.handle(ctx, request((0, 1))))
    other_connection = asyncio.ensure_future(produce.handle(
        SimpleNamespace(replicas=replicas, services=services, connection_id=1), request((0, 100))))
    await asyncio.wait_for(other_connection, 10)  # another connection is not held up
    for _ in range(5):
        await asyncio.sleep(0)
    assert replicas.order == [(0, 100)], "the second request appended while the first one waited"
    replicas.release.set()
    await asyncio.wait_for(asyncio.gather(first, second), 10)
    assert replicas.order == [(0, 100), (1, 0), (0, 0), (0, 1)]
    assert services.appends_done == {}  # nothing kept once the connection's requests are done



class _BecomingLeader:
    """Replicas of a broker that is not yet the partition's leader until `leads` is set; then its log expects
    the producer's sequence `expected` next."""

    def __init__(self):
        from types import SimpleNamespace

        self.leads, self.expected, self.stored = False, 0, []
        self._replica = SimpleNamespace(log=SimpleNamespace(config=SimpleNamespace(compact=False),
                                                            log_start_offset=0))

    def leader(self, topic, index):
        from kafkalite.protocol.errors import ErrorCode
        from kafkalite.replication.replica_manager import NotServed

        if not self.leads:
            raise NotServed(ErrorCode.NOT_LEADER_OR_FOLLOWER, "not the leader")
        return self._replica

    async def append(self, topic, index, batch, acks=1, guard=None):
        from types import SimpleNamespace

        from kafkalite.log.errors import OutOfOrderSequence
        from kafkalite.protocol.record_batch import iter_batches

        sequence = next(iter(iter_batches(batch))).base_sequence
        if sequence != self.expected:
            raise OutOfOrderSequence(f"expected sequence {self.expected}, got {sequence}")
        self.stored.append(sequence)
        self.expected += 1
        return self._replica, SimpleNamespace(base_offset=sequence, last_offset=sequence, log_append_time=-1)


@pytest.mark.timeout(30)
async def test_a_batch_pipelined_behind_one_refused_as_not_leader_is_refused_the_same_way():
    """Found by the rolling restart (librdkafka's own eos log said why): a broker answered a producer's batch
    with sequence 135 NOT_LEADER_OR_FOLLOWER, became the leader a moment later, and answered the next batch of
    the same connection (sequence 136) OUT_OF_ORDER_SEQUENCE_NUMBER. librdkafka then bumped its producer epoch
    and sent again, from sequence 0 of the new epoch, batches already stored: 40 values stored twice. Told
    NOT_LEADER_OR_FOLLOWER for both, the client retries them in order. (Power loss of two brokers met the same
    race with NOT_ENOUGH_REPLICAS.)"""
    from types import SimpleNamespace

    from kafkalite.broker.handlers import produce
    from kafkalite.protocol.errors import ErrorCode
    from kafkalite.protocol.record_batch import build_batch

    replicas = _BecomingLeader()
    services = SimpleNamespace(appends_done={}, refused_before_append={})
    image = SimpleNamespace(partition=lambda topic, index: None, leader_of=lambda topic, index: None)
    ctx = SimpleNamespace(replicas=replicas, services=services, connection_id=7, node_id=1, config={},
                          metadata=SimpleNamespace(image=image))
    other = SimpleNamespace(replicas=replicas, services=services, connection_id=8, node_id=1, config={},
                            metadata=SimpleNamespace(image=image))

    async def produce_one(context, sequence: int, producer_id: int = 7) -> int:
        records = memoryview(bytearray(build_batch([(None, b"v")], producer_id=producer_id, producer_epoch=0,
                                                   base_sequence=sequence)))
        response = await produce.handle(context, {"acks": 1, "timeout_ms": 1000, "transactional_id": None,
                                                  "topic_data": [{"name": "t", "partition_data": [
                                                      {"index": 0, "records": records}]}]})
        return response["responses"][0]["partition_responses"][0]["error_code"]

    assert await produce_one(ctx, 0) == ErrorCode.NOT_LEADER_OR_FOLLOWER
    replicas.leads = True
    assert await produce_one(ctx, 1) == ErrorCode.NOT_LEADER_OR_FOLLOWER, "the pipelined batch, a sequence ahead"
    assert await produce_one(other, 1) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, "another connection: as Kafka"
    assert [await produce_one(ctx, s) for s in (0, 1)] == [ErrorCode.NONE, ErrorCode.NONE]
    assert replicas.stored == [0, 1]
    replicas.expected = 5
    assert await produce_one(ctx, 9) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, "once it appended, as Kafka again"
    # The same race with the ISR: refused NOT_ENOUGH_REPLICAS, then the ISR grows back before the next batch.
    from kafkalite.broker.errors import Rejected

    append = replicas.append

    async def short_of_replicas(*args, **kwargs):
        raise Rejected(ErrorCode.NOT_ENOUGH_REPLICAS, "the ISR is smaller than min.insync.replicas")

    replicas.append = short_of_replicas
    assert await produce_one(ctx, 5) == ErrorCode.NOT_ENOUGH_REPLICAS
    replicas.append = append
    assert await produce_one(ctx, 6) == ErrorCode.NOT_ENOUGH_REPLICAS, "the pipelined batch behind it"
    assert [await produce_one(ctx, s) for s in (5, 6)] == [ErrorCode.NONE, ErrorCode.NONE]

    # Found by the power cut of every broker under durability=interval: the batches before the refused one were
    # lost with every copy, so the refused batch, sent again once the ISR grew back, is out of order itself. It
    # was answered NOT_ENOUGH_REPLICAS (its own refusal) for as long as the connection lived: producers stalled
    # for a minute with a healthy ISR. It gets OUT_OF_ORDER_SEQUENCE_NUMBER, as from Kafka.
    replicas.append = short_of_replicas
    assert [await produce_one(ctx, s) for s in (20, 21)] == [ErrorCode.NOT_ENOUGH_REPLICAS] * 2
    replicas.append = append  # the log expects 7
    assert await produce_one(ctx, 20) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert await produce_one(ctx, 21) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, "the refusal is forgotten"
    # Another producer's batch on the same connection is not answered with this producer's refusal.
    replicas.append = short_of_replicas
    assert await produce_one(ctx, 7) == ErrorCode.NOT_ENOUGH_REPLICAS
    replicas.append = append
    assert await produce_one(ctx, 8, producer_id=9) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert [await produce_one(ctx, s) for s in (7, 8)] == [ErrorCode.NONE, ErrorCode.NONE]


def test_a_follower_past_the_leaders_log_end_in_the_current_epoch_is_told_where_it_ends():
    """Found by the power loss of every broker (durability=always): the leader came back at the same leader
    epoch with a shorter log than a follower (the follower had fsynced records the leader had not). The leader
    skipped the diverging-epoch check for its current epoch, answered the follower's fetch past its log end
    with OFFSET_OUT_OF_RANGE and no high watermark, and the follower fetched the same offset again for good,
    out of the ISR. Kafka's leader answers a diverging epoch ending at its log end; the follower truncates."""
    from types import SimpleNamespace

    from kafkalite.broker.handlers.fetch import diverging_epoch

    replica = SimpleNamespace(leader_epoch=3, log=SimpleNamespace(log_end_offset=100))
    assert diverging_epoch(replica, 3, 150) == {"epoch": 3, "end_offset": 100}
    assert diverging_epoch(replica, 3, 100) is None and diverging_epoch(replica, 3, 40) is None
class _CallCutByItsChannel:
    """A keep-alive stream that waits until its channel is closed, then ends as gRPC ends such a call."""

    def __init__(self, closed: asyncio.Event):
        self.closed = closed

    async def read(self):
        await self.closed.wait()
        raise asyncio.CancelledError()  # what grpc.aio raises for a call cancelled locally (by channel.close)

    def cancel(self):
        pass


class _ChannelClosingClient:
    def __init__(self):
        from types import SimpleNamespace

        self.closed = asyncio.Event()
        self.metadata = None
        self.leasestub = SimpleNamespace(LeaseKeepAlive=lambda requests, **kw: _CallCutByItsChannel(self.closed))

    async def close(self):
        self.closed.set()


@pytest.mark.timeout(30)
async def test_a_keep_alive_whose_channel_another_caller_closes_fails_as_unavailable_not_cancelled(monkeypatch):
    """Found by the network partition faults (the stall of issue #16): the keep-alive, the watch and every call
    shared one gRPC channel. Cut from etcd, the watch failed and rotated, closing that channel; gRPC ends the calls
    still on a closed channel with asyncio.CancelledError, so the keep-alive's call raised CancelledError, which
    no `except Exception` stops: the broker's lease-keep-alive task ended after logging one failure, and the broker
    stayed fenced after the network healed. Such a call is now an unreachable member (StoreUnavailable), and the
    next keep-alive runs on a new channel."""
    pytest.importorskip("aetcd")
    import kafkalite.cluster.etcd as etcd_module
    from kafkalite.cluster.etcd import EtcdStore
    from kafkalite.cluster.store import StoreUnavailable

    clients: list[_ChannelClosingClient] = []

    async def connected(channel):
        if channel._client is None:
            channel._client = _ChannelClosingClient()
            clients.append(channel._client)
        return channel._client

    monkeypatch.setattr(etcd_module._Channel, "connected", connected)
    store = EtcdStore([("127.0.0.1", 1)])
    keep_alive = asyncio.create_task(store.keep_alive(7))
    while not clients:
        await asyncio.sleep(0)
    store._calls.rotate(clients[0])  # another caller failed on this channel
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(keep_alive, 10)
    assert not keep_alive.cancelled()


@pytest.mark.timeout(30)
async def test_a_keep_alive_that_is_really_cancelled_stays_cancelled(monkeypatch):
    """The other side: cancelling the keep-alive's task (the broker stopping) is not taken for a closed channel."""
    pytest.importorskip("aetcd")
    import kafkalite.cluster.etcd as etcd_module
    from kafkalite.cluster.etcd import EtcdStore

    client = _ChannelClosingClient()

    async def connected(channel):
        return client

    monkeypatch.setattr(etcd_module._Channel, "connected", connected)
    store = EtcdStore([("127.0.0.1", 1)])
    keep_alive = asyncio.create_task(store.keep_alive(7))
    for _ in range(5):
        await asyncio.sleep(0)
    keep_alive.cancel()
    with pytest.raises(asyncio.CancelledError):
        await keep_alive


NFT_TABLE = "kafkalite_fault_regressions"


def _nft(script: str) -> None:
    import subprocess

    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True, capture_output=True)


@pytest.mark.timeout(90)
async def test_the_lease_keep_alive_and_the_watch_come_back_after_a_network_cut(tmp_path):
    """The stall end to end, with nftables: every packet to etcd's client port dropped for 6 s (longer than the
    lease), then the network heals. Within 5 s the keep-alive answers again (or learns that the lease is gone and
    a new one is granted and kept alive), and the watch delivers a change made after the healing."""
    import shutil

    from brokerproc import missing

    if os.geteuid() != 0 or shutil.which("nft") is None:
        missing("a network cut needs root and nft (Debian package nftables)")
    if shutil.which("etcd") is None:
        missing("etcd is not installed (Debian package etcd-server)")
    from etcdproc import EtcdProcess

    from kafkalite.cluster.etcd import EtcdStore
    from kafkalite.cluster.store import LeaseExpired, Put, StoreUnavailable

    etcd = EtcdProcess(str(tmp_path / "etcd")).start()
    loop = asyncio.get_running_loop()
    store = EtcdStore([("127.0.0.1", etcd.client_port)])
    seen: list[str] = []

    async def follow():
        async for event in store.watch_prefix("cut/", 1):
            seen.append(event.key)

    watching = asyncio.create_task(follow())
    try:
        lease = await store.grant_lease(3000)
        await store.txn([], [Put("cut/before", b"v")])
        while "cut/before" not in seen:
            await asyncio.sleep(0.05)
        _nft(f"add table inet {NFT_TABLE}\n"
             f"add chain inet {NFT_TABLE} out {{ type filter hook output priority 0 ; }}\n"
             f"add rule inet {NFT_TABLE} out tcp dport {etcd.client_port} drop\n")
        try:
            cut_until = loop.time() + 6
            while loop.time() < cut_until:  # the broker's pace: a keep-alive every TTL/3
                with pytest.raises(StoreUnavailable):
                    await store.keep_alive(lease)
                await asyncio.sleep(1)
        finally:
            _nft(f"delete table inet {NFT_TABLE}\n")
        healed = loop.time()
        while True:
            try:
                await store.keep_alive(lease)
                break
            except LeaseExpired:
                lease = await store.grant_lease(3000)
            except StoreUnavailable:
                assert loop.time() - healed < 5, "no keep-alive answered within 5 s of the healing"
                await asyncio.sleep(0.2)
        await store.txn([], [Put("cut/after", b"v")])
        while "cut/after" not in seen:
            assert loop.time() - healed < 10, f"the watch saw nothing after the healing: {seen}"
            assert not watching.done(), watching
            await asyncio.sleep(0.05)
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await store.close()
        etcd.stop()


@pytest.mark.timeout(120)
async def test_a_watch_on_an_etcd_member_that_stops_answering_moves_to_another_member(tmp_path):
    """A member that stops answering without closing its connections (SIGSTOP: the kernel still takes the bytes)
    leaves a watch stream silent for ever, unless gRPC's keepalive pings find it dead: then the watch resumes on
    another member of the three and delivers what was written meanwhile."""
    import shutil
    import signal

    from brokerproc import missing

    if shutil.which("etcd") is None:
        missing("etcd is not installed (Debian package etcd-server)")
    from etcdproc import EtcdCluster

    from kafkalite.cluster.etcd import EtcdStore
    from kafkalite.cluster.store import Put

    etcd = EtcdCluster(str(tmp_path / "etcd"), ["127.0.0.1"] * 3).start()
    loop = asyncio.get_running_loop()
    store = EtcdStore([(m.host, m.client_port) for m in etcd.members])
    seen: list[str] = []

    async def follow():
        async for event in store.watch_prefix("stop/", 1):
            seen.append(event.key)

    watching = asyncio.create_task(follow())
    frozen = etcd.members[0]  # where the store's channels start
    try:
        await store.txn([], [Put("stop/before", b"v")])
        while "stop/before" not in seen:
            await asyncio.sleep(0.05)
        frozen.proc.send_signal(signal.SIGSTOP)
        stopped = loop.time()
        while True:  # the write moves to another member by its deadline; a lost answer may mean it was applied
            try:
                await store.txn([], [Put("stop/after", b"v")])
                break
            except Exception:  # noqa: BLE001 - StoreUnavailable while the members elect a leader
                assert loop.time() - stopped < 30, "no other etcd member took the write"
        while "stop/after" not in seen:
            assert loop.time() - stopped < 40, f"the watch stayed on the stopped member: {seen}"
            assert not watching.done(), watching
            await asyncio.sleep(0.1)
    finally:
        frozen.proc.send_signal(signal.SIGCONT)
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await store.close()
        etcd.stop()


class _KeepAliveCall:
    def __init__(self, reply):
        self.reply = reply

    async def read(self):
        if isinstance(self.reply, BaseException):
            raise self.reply
        return self.reply

    def cancel(self):
        pass


class _KeepAliveMember:
    """A member's client: its keep-alive answers `reply` (or raises it), recording the deadline it was given."""

    def __init__(self, reply):
        from types import SimpleNamespace

        self.deadlines: list[float] = []
        self.metadata = None

        def keep_alive(requests, timeout, metadata):
            self.deadlines.append(timeout)
            return _KeepAliveCall(reply)

        self.leasestub = SimpleNamespace(LeaseKeepAlive=keep_alive)

    async def close(self):
        pass


@pytest.mark.timeout(30)
async def test_a_keep_alive_gives_each_member_a_quarter_of_the_lease_then_asks_the_next(monkeypatch):
    """Found by the SIGSTOP of etcd's leader: a broker's keep-alive met a member still waiting for its cluster's
    new leader (2 s deadline), then the frozen member (2 s more): its 3 s lease expired before it asked the third
    member. Each member now gets a quarter of the TTL before the next is asked."""
    pytest.importorskip("aetcd")
    import grpc
    from types import SimpleNamespace

    import kafkalite.cluster.etcd as etcd_module
    from kafkalite.cluster.etcd import EtcdStore

    deadline_exceeded = grpc.aio.AioRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(),
                                             grpc.aio.Metadata(), "Deadline Exceeded")
    members = [_KeepAliveMember(deadline_exceeded), _KeepAliveMember(deadline_exceeded),
               _KeepAliveMember(SimpleNamespace(TTL=3))]

    async def connected(channel):
        channel._client = members[channel.current]
        return channel._client

    monkeypatch.setattr(etcd_module._Channel, "connected", connected)
    store = EtcdStore([("127.0.0.1", 1), ("127.0.0.1", 2), ("127.0.0.1", 3)])

    async def lease(client_ttl):
        return SimpleNamespace(id=7)

    for member in members:
        member.lease = lease
    assert await store.grant_lease(3000) == 7
    await store.keep_alive(7)  # answered by the third member
    deadlines = [d for m in members for d in m.deadlines]
    assert len(deadlines) == 3 and all(d <= 0.75 for d in deadlines), deadlines
