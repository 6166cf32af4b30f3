"""The transaction coordinator in cluster mode, without a cluster: TransactionService following the leadership of
__transaction_state partitions (load, unload, NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, the coordinator epoch
in its markers), and RoutedMarkers sending markers to a partition's leader on another broker (an in-process
kafkalite broker answering WriteTxnMarkers) or writing them locally."""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid

import pytest

from kafkalite.broker.transactions import MarkerNotWritten, RoutedMarkers, TransactionService, marker_batch, \
    marker_fields
from kafkalite.clock import ManualClock
from kafkalite.config import BrokerConfig
from kafkalite.metadata.image import BrokerInfo, MetadataImage, PartitionInfo, TopicImage
from kafkalite.protocol.codec import decode_data
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.messages.data.control_record import CONTROL_RECORD_KEY, END_TXN_MARKER
from kafkalite.protocol.record_batch import RecordBatch, iter_batches
from kafkalite.server import Server
from kafkalite.txn import TxnConfig, TxnState
from kafkalite.txn import records as txn_records

PARTITIONS = 2
P0_ID = next(f"txn-{i}" for i in itertools.count() if txn_records.partition_for(f"txn-{i}", PARTITIONS) == 0)
P1_ID = next(f"txn-{i}" for i in itertools.count() if txn_records.partition_for(f"txn-{i}", PARTITIONS) == 1)


class TxnLog:
    """__transaction_state in memory, shared by the 'brokers' of a test (as replicas of one log would be).
    `read_gate`: reads wait for it (a load in progress); `append_gate`: appends wait for it."""

    def __init__(self):
        self.rows: list[list[tuple[bytes, bytes | None]]] = [[] for _ in range(PARTITIONS)]
        self.read_gate: threading.Event | None = None
        self.append_gate: asyncio.Event | None = None

    def partition_count(self) -> int:
        return PARTITIONS

    def read_partition(self, partition: int):
        if self.read_gate is not None:
            assert self.read_gate.wait(10)
        return list(self.rows[partition])

    async def append(self, partition: int, batch: bytes) -> int:
        if self.append_gate is not None:
            await self.append_gate.wait()
        self.rows[partition].extend((r.key, r.value) for r in RecordBatch(memoryview(batch)).records())
        return 0


class Markers:
    """Records each marker (topic, index, producer epoch, coordinator epoch, commit); `failing`: raise instead."""

    def __init__(self):
        self.written: list[tuple[str, int, int, int, bool]] = []
        self.attempts = 0
        self.failing = False
        self.attempted = asyncio.Event()

    async def write_marker(self, topic, index, batch, producer_id, commit) -> None:
        self.attempts += 1
        self.attempted.set()
        await asyncio.sleep(0)
        if self.failing:
            raise ConnectionError("the partition's leader is unreachable")
        self.written.append((topic, index, *marker_fields(batch), commit))


def service(txn_log: TxnLog, markers: Markers, fenced=lambda: False) -> TransactionService:
    ids = itertools.count(1000)

    async def allocate() -> int:
        return next(ids)

    svc = TransactionService(TxnConfig(num_partitions=PARTITIONS, max_timeout_ms=60_000), txn_log, markers,
                             allocate, ManualClock(1_000), 1_000, fenced=fenced)
    svc.start(PARTITIONS)
    return svc


async def open_transaction(svc: TransactionService, txn_id: str, partitions=(("t", 0), ("t", 1))) -> tuple[int, int]:
    code, pid, epoch = await svc.init_producer_id(txn_id, 10_000, -1, -1)
    assert code == ErrorCode.NONE
    assert await svc.add_partitions(txn_id, pid, epoch, set(partitions)) == ErrorCode.NONE
    return pid, epoch


async def test_only_the_partitions_it_leads_are_coordinated_and_a_load_answers_load_in_progress():
    txn_log = TxnLog()
    svc = service(txn_log, Markers())
    assert svc.coordinator_error(P0_ID) == svc.coordinator_error(P1_ID) == ErrorCode.NOT_COORDINATOR
    txn_log.read_gate = threading.Event()
    loading = asyncio.ensure_future(svc.load_partition(0, 3))
    await asyncio.sleep(0.05)
    assert svc.coordinator_error(P0_ID) == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    txn_log.read_gate.set()
    await loading
    assert svc.coordinator_error(P0_ID) == ErrorCode.NONE
    assert svc.coordinator_error(P1_ID) == ErrorCode.NOT_COORDINATOR
    svc.unload_partition(0)
    assert svc.coordinator_error(P0_ID) == ErrorCode.NOT_COORDINATOR
    await svc.stop()


async def test_a_fenced_broker_coordinates_nothing():
    fenced = False
    svc = service(TxnLog(), Markers(), fenced=lambda: fenced)
    await svc.load_partition(0, 0)
    assert svc.coordinator_error(P0_ID) == ErrorCode.NONE
    fenced = True
    assert svc.coordinator_error(P0_ID) == ErrorCode.NOT_COORDINATOR
    await svc.stop()


async def test_markers_carry_the_partitions_leader_epoch_as_coordinator_epoch():
    markers = Markers()
    svc = service(TxnLog(), markers)
    await svc.load_partition(0, 7)
    pid, epoch = await open_transaction(svc, P0_ID)
    assert await svc.end_txn(P0_ID, pid, epoch, commit=True) == ErrorCode.NONE
    assert sorted(markers.written) == [("t", 0, epoch, 7, True), ("t", 1, epoch, 7, True)]
    assert svc.coordinator.transactions[P0_ID].state == TxnState.COMPLETE_COMMIT
    await svc.stop()


async def test_the_new_leader_finishes_a_prepared_transaction_and_the_old_one_stops_writing_markers():
    txn_log, old_markers, new_markers = TxnLog(), Markers(), Markers()
    old = service(txn_log, old_markers)
    await old.load_partition(0, 0)
    pid, epoch = await open_transaction(old, P0_ID)
    old_markers.failing = True  # the partitions' leaders are unreachable from the old coordinator
    ending = asyncio.ensure_future(old.end_txn(P0_ID, pid, epoch, commit=False))
    await asyncio.wait_for(old_markers.attempted.wait(), 10)
    old.unload_partition(0)  # leadership of __transaction_state-0 moved (PrepareAbort is in the log)
    await old.settle_background()
    attempts = old_markers.attempts
    assert await ending == ErrorCode.NONE  # the Prepare record was durable: the transaction will complete
    assert P0_ID not in old.coordinator.transactions
    new = service(txn_log, new_markers)
    await new.load_partition(0, 1)
    await new.settle_background()
    assert sorted(new_markers.written) == [("t", 0, epoch, 1, False), ("t", 1, epoch, 1, False)]
    assert new.coordinator.transactions[P0_ID].state == TxnState.COMPLETE_ABORT
    assert old_markers.attempts == attempts and old_markers.written == []
    await old.stop()
    await new.stop()


async def test_a_request_whose_partition_moved_away_meanwhile_is_not_coordinator_and_changes_nothing():
    txn_log = TxnLog()
    svc = service(txn_log, Markers())
    await svc.load_partition(0, 0)
    code, pid, epoch = await svc.init_producer_id(P0_ID, 10_000, -1, -1)
    txn_log.append_gate = asyncio.Event()
    adding = asyncio.ensure_future(svc.add_partitions(P0_ID, pid, epoch, {("t", 0)}))
    await asyncio.sleep(0.01)
    svc.unload_partition(0)
    txn_log.append_gate.set()
    assert await adding == ErrorCode.NOT_COORDINATOR
    assert P0_ID not in svc.coordinator.transactions
    await svc.load_partition(0, 1)  # back here: the record that was written counts, from the log
    assert svc.coordinator.transactions[P0_ID].state == TxnState.ONGOING
    await svc.stop()


async def test_an_expired_transaction_on_a_loaded_partition_is_aborted_by_the_new_coordinator():
    txn_log, markers = TxnLog(), Markers()
    first = service(txn_log, markers)
    await first.load_partition(1, 0)
    pid, epoch = await open_transaction(first, P1_ID)
    first.unload_partition(1)  # its broker died mid-transaction
    second = service(txn_log, markers)
    await second.load_partition(1, 4)
    assert second.coordinator.transactions[P1_ID].state == TxnState.ONGOING
    second.clock.advance(11_000)  # past the 10 s timeout, from the transaction's start
    await second.settle_background()
    assert sorted(markers.written) == [("t", 0, epoch + 1, 4, False), ("t", 1, epoch + 1, 4, False)]
    assert second.coordinator.transactions[P1_ID].state == TxnState.COMPLETE_ABORT
    await first.stop()
    await second.stop()


# ---------------------------------------------------------------- RoutedMarkers against a broker over the network


class Image:
    def __init__(self, image: MetadataImage):
        self.image = image


def image_with(brokers: list[BrokerInfo], topics: dict[str, list[int]]) -> MetadataImage:
    """`topics`: name -> the leader of each partition."""
    return MetadataImage(brokers={b.node_id: b for b in brokers}, topics={
        name: TopicImage(name, uuid.uuid4(), tuple(PartitionInfo((leader,), leader, 0, (leader,)) for leader in lead))
        for name, lead in topics.items()})


@pytest.fixture
async def remote(tmp_path):
    """A broker (node 7) leading t-0, reached over the network."""
    config = BrokerConfig(listen_host="127.0.0.1", listen_port=0, data_dir=str(tmp_path / "remote"), node_id=7)
    config.set("kafkalite.durability", "never")
    config.set("offsets.topic.num.partitions", 1)
    config.set("transaction.state.log.num.partitions", 1)
    server = Server(config)
    await server.start()
    await server.broker.metadata.create_topic("t", 1, {})
    yield server
    await server.stop()


def control_batches(server, topic: str) -> list[tuple[int, int, int, int]]:
    """(producer id, producer epoch, type, coordinator epoch) of each marker in the partition."""
    plog = server.broker.logs.partition(topic, 0)
    found = []
    for chunk in plog.read(0, 1 << 20):
        for batch in iter_batches(memoryview(bytes(chunk))):
            if batch.is_control:
                [record] = list(batch.records())
                found.append((batch.producer_id, batch.producer_epoch,
                              decode_data(CONTROL_RECORD_KEY, record.key)[1]["type"],
                              decode_data(END_TXN_MARKER, record.value)[1]["coordinator_epoch"]))
    return found


async def test_routed_markers_go_to_the_remote_leader_or_stay_local(remote):
    peer = BrokerInfo(7, "127.0.0.1", remote.config.listen_port)
    me = BrokerInfo(1, "127.0.0.1", 1)
    metadata = Image(image_with([me, peer], {"t": [7], "mine": [1], "elsewhere": [7]}))
    local = Markers()
    routed = RoutedMarkers(metadata, local, node_id=1, timeout_s=30)
    try:
        await routed.write_marker("t", 0, marker_batch(42, 3, True, 1_000, 5), 42, True)
        await routed.write_marker("t", 0, marker_batch(43, 0, False, 1_000, 5), 43, False)  # on the kept connection
        assert control_batches(remote, "t") == [(42, 3, 1, 5), (43, 0, 0, 5)]
        await routed.write_marker("mine", 0, marker_batch(42, 3, True, 1_000, 5), 42, True)
        assert local.written == [("mine", 0, 3, 5, True)]
        with pytest.raises(LookupError):  # not in the metadata: deleted, no marker needed
            await routed.write_marker("gone", 0, marker_batch(42, 3, True, 1_000, 5), 42, True)
        with pytest.raises(MarkerNotWritten, match="UNKNOWN_TOPIC_OR_PARTITION"):  # the leader does not have it yet
            await routed.write_marker("elsewhere", 0, marker_batch(42, 3, True, 1_000, 5), 42, True)
        with pytest.raises(MarkerNotWritten, match="INVALID_PRODUCER_EPOCH"):  # older than the marker before it
            await routed.write_marker("t", 0, marker_batch(42, 2, False, 1_000, 5), 42, False)
        metadata.image = image_with([me], {"t": [7]})  # the leader's broker is gone from the cluster
        with pytest.raises(MarkerNotWritten, match="no live leader"):
            await routed.write_marker("t", 0, marker_batch(42, 3, True, 1_000, 5), 42, True)
        assert len(control_batches(remote, "t")) == 2
    finally:
        routed.close()


async def test_write_txn_markers_v0_and_v1_report_each_partition(remote):
    from kafkalite.replication.fetcher import PeerConnection

    connection = PeerConnection(BrokerInfo(7, "127.0.0.1", remote.config.listen_port), "test")
    try:
        for version in (0, 1):
            response = await connection.request(27, version, {"markers": [
                {"producer_id": 50 + version, "producer_epoch": 0, "transaction_result": True, "coordinator_epoch": 2,
                 "topics": [{"name": "t", "partition_indexes": [0, 9]}, {"name": "nope", "partition_indexes": [0]}]},
            ]}, 30)
            assert response == {"markers": [{"producer_id": 50 + version, "topics": [
                {"name": "t", "partitions": [{"partition_index": 0, "error_code": 0},
                                             {"partition_index": 9, "error_code": 3}]},
                {"name": "nope", "partitions": [{"partition_index": 0, "error_code": 3}]}]}]}
        assert control_batches(remote, "t") == [(50, 0, 1, 2), (51, 0, 1, 2)]
    finally:
        connection.close()


# ---------------------------------------------------------------- FindCoordinator creates __transaction_state


class CreatingMetadata:
    def __init__(self, brokers: int):
        self.image = image_with([BrokerInfo(n, "127.0.0.1", 9000 + n) for n in range(1, brokers + 1)], {})
        self.created: list[tuple] = []

    async def create_topic(self, name, partitions, configs, replication_factor=-1):
        self.created.append((name, partitions, configs["cleanup.policy"], configs["min.insync.replicas"],
                             replication_factor))


@pytest.mark.parametrize("brokers, factor, created", [(5, 3, [("__transaction_state", 50, "compact", "2", 3)]),
                                                      (3, 1, [("__transaction_state", 50, "compact", "1", 1)]),
                                                      (2, 3, [])])
async def test_the_first_find_coordinator_for_a_transactional_id_creates_the_topic(brokers, factor, created):
    """With transaction.state.log.replication.factor replicas, only once that many brokers are live (as Kafka);
    min.insync.replicas is transaction.state.log.min.isr, at most the replication factor."""
    import kafkalite.broker.handlers.find_coordinator as find_coordinator

    class Ctx:
        api_version = 3
        metadata = CreatingMetadata(brokers)
        config = {"transaction.state.log.replication.factor": factor, "transaction.state.log.min.isr": 2,
                  "transaction.state.log.num.partitions": 50}

    answer = await find_coordinator.handle(Ctx, {"key": P0_ID, "key_type": 1})
    assert answer["error_code"] == ErrorCode.COORDINATOR_NOT_AVAILABLE  # the client asks again once it exists
    assert Ctx.metadata.created == created


# ---------------------------------------------------------------- the App follows __transaction_state's leadership


async def test_the_app_loads_the_partitions_it_leads_again_at_a_new_epoch_and_unloads_the_others():
    import types

    from kafkalite.app import App

    calls = []

    class Transactions:
        def start(self, partition_count):
            calls.append(("start", partition_count))

        async def load_partition(self, partition, epoch):
            calls.append(("load", partition, epoch))

        def unload_partition(self, partition):
            calls.append(("unload", partition))

    app = types.SimpleNamespace(node_id=1, transactions=Transactions(), _txn_epochs={}, _loading=set())
    follow = App._follow_transaction_leadership.__get__(app)

    def publish(*partitions: tuple[int, int]) -> None:  # (leader, leader epoch) of each partition
        follow(MetadataImage(topics={"__transaction_state": TopicImage("__transaction_state", uuid.uuid4(), tuple(
            PartitionInfo((1, 2), leader, epoch, (1, 2)) for leader, epoch in partitions))}))

    publish((1, 0), (2, 0))
    await asyncio.gather(*app._loading)
    assert calls == [("start", 2), ("load", 0, 0)]
    calls.clear()
    publish((1, 0), (1, 1))  # partition 1 moved here; partition 0 unchanged
    publish((2, 1), (1, 1))  # partition 0 moved away
    publish((1, 2), (1, 1))  # and came back at a later epoch: another coordinator may have written meanwhile
    await asyncio.gather(*app._loading)
    assert sorted(c for c in calls if c[0] != "start") == [("load", 0, 2), ("load", 1, 1), ("unload", 0)]
    calls.clear()
    follow(MetadataImage())  # the topic is gone
    assert sorted(calls) == [("unload", 0), ("unload", 1)]
