"""TransactionService (the asyncio shell) over an in-memory __transaction_state, a recording marker writer and a
ManualClock: records before state, markers to every partition, timeouts, and recovery of a half-ended
transaction."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from kafkalite.broker.transactions import TransactionService
from kafkalite.clock import ManualClock
from kafkalite.protocol.codec import decode_data
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.messages.data.control_record import CONTROL_RECORD_KEY, END_TXN_MARKER
from kafkalite.protocol.record_batch import RecordBatch
from kafkalite.txn import TxnConfig, TxnState
from kafkalite.txn import records as txn_records

TXN = "txn-1"


class MemoryTxnLog:
    def __init__(self, partitions: int = 2):
        self.rows: list[list[tuple[bytes, bytes | None]]] = [[] for _ in range(partitions)]
        self.fail_appends = False

    def partition_count(self) -> int:
        return len(self.rows)

    def read_partition(self, partition: int):
        return list(self.rows[partition])

    async def append(self, partition: int, batch: bytes) -> int:
        await asyncio.sleep(0)
        if self.fail_appends:
            raise OSError("disk full")
        self.rows[partition].extend((r.key, r.value) for r in RecordBatch(memoryview(batch)).records())
        return 0

    def states(self, txn_id: str = TXN) -> list[TxnState]:
        return [txn_records.decode_value(txn_id, v).state for rows in self.rows for k, v in rows
                if txn_records.decode_key(k) == txn_id]


class RecordingMarkers:
    def __init__(self):
        self.written: list[tuple[str, int, int, int, int]] = []  # topic, index, producer id, epoch, type
        self.gone: set[tuple[str, int]] = set()

    async def write_marker(self, topic: str, index: int, batch: bytes, producer_id: int, commit: bool) -> None:
        await asyncio.sleep(0)
        if (topic, index) in self.gone:
            raise LookupError("deleted")
        parsed = RecordBatch(memoryview(bytearray(batch)))
        assert parsed.is_control and parsed.is_transactional and parsed.base_sequence == -1
        [record] = list(parsed.records())
        key = decode_data(CONTROL_RECORD_KEY, record.key)[1]
        assert decode_data(END_TXN_MARKER, record.value)[1] == {"coordinator_epoch": 0}
        assert (producer_id, commit) == (parsed.producer_id, key["type"] == 1)
        self.written.append((topic, index, parsed.producer_id, parsed.producer_epoch, key["type"]))


def service(txn_log=None, markers=None, clock=None) -> TransactionService:
    ids = itertools.count(100)

    async def allocate() -> int:
        return next(ids)

    return TransactionService(TxnConfig(num_partitions=2, max_timeout_ms=60_000), txn_log or MemoryTxnLog(),
                              markers or RecordingMarkers(), allocate, clock or ManualClock(1_000), 1_000)


async def test_commit_writes_prepare_markers_then_complete():
    txn_log, markers = MemoryTxnLog(), RecordingMarkers()
    svc = service(txn_log, markers)
    await svc.load_all()
    code, pid, epoch = await svc.init_producer_id(TXN, 10_000, -1, -1)
    assert (code, pid, epoch) == (0, 100, 0)
    assert await svc.add_partitions(TXN, pid, epoch, {("a", 0), ("b", 1)}) == 0
    assert await svc.end_txn(TXN, pid, epoch, True) == 0
    assert sorted(markers.written) == [("a", 0, pid, 0, 1), ("b", 1, pid, 0, 1)]
    assert txn_log.states() == [TxnState.EMPTY, TxnState.ONGOING, TxnState.PREPARE_COMMIT,
                                TxnState.COMPLETE_COMMIT]
    await svc.stop()


async def test_a_failed_append_answers_coordinator_not_available_and_changes_nothing():
    txn_log = MemoryTxnLog()
    svc = service(txn_log)
    await svc.load_all()
    _, pid, epoch = await svc.init_producer_id(TXN, 10_000, -1, -1)
    txn_log.fail_appends = True
    assert await svc.add_partitions(TXN, pid, epoch, {("a", 0)}) == ErrorCode.COORDINATOR_NOT_AVAILABLE
    txn_log.fail_appends = False
    assert svc.coordinator.transactions[TXN].state == TxnState.EMPTY
    assert await svc.add_partitions(TXN, pid, epoch, {("a", 0)}) == 0
    await svc.stop()


async def test_markers_to_a_deleted_partition_are_skipped():
    markers = RecordingMarkers()
    markers.gone.add(("gone", 0))
    svc = service(markers=markers)
    await svc.load_all()
    _, pid, epoch = await svc.init_producer_id(TXN, 10_000, -1, -1)
    await svc.add_partitions(TXN, pid, epoch, {("a", 0), ("gone", 0)})
    assert await svc.end_txn(TXN, pid, epoch, False) == 0
    assert markers.written == [("a", 0, pid, 0, 0)]
    assert svc.coordinator.transactions[TXN].state == TxnState.COMPLETE_ABORT
    await svc.stop()


async def test_an_expired_transaction_is_aborted_on_the_clock_and_its_producer_fenced():
    clock, markers, txn_log = ManualClock(1_000), RecordingMarkers(), MemoryTxnLog()
    svc = service(txn_log, markers, clock)
    await svc.load_all()
    _, pid, epoch = await svc.init_producer_id(TXN, 5_000, -1, -1)
    await svc.add_partitions(TXN, pid, epoch, {("a", 0)})
    clock.advance(4_000)
    await svc.settle_background()
    assert markers.written == []
    clock.advance(1_000)  # 5 s after the transaction started; the check runs every second
    await svc.settle_background()
    assert markers.written == [("a", 0, pid, 1, 0)]  # ABORT, with the bumped epoch
    assert svc.coordinator.transactions[TXN].state == TxnState.COMPLETE_ABORT
    assert await svc.end_txn(TXN, pid, epoch, True) == ErrorCode.PRODUCER_FENCED
    await svc.stop()


async def test_init_producer_id_aborts_the_open_transaction_and_the_retry_gets_a_new_epoch():
    markers = RecordingMarkers()
    svc = service(markers=markers)
    await svc.load_all()
    _, pid, epoch = await svc.init_producer_id(TXN, 10_000, -1, -1)
    await svc.add_partitions(TXN, pid, epoch, {("a", 0)})
    assert (await svc.init_producer_id(TXN, 10_000, -1, -1))[0] == ErrorCode.CONCURRENT_TRANSACTIONS
    await svc.settle_background()
    assert markers.written == [("a", 0, pid, 1, 0)]
    assert await svc.init_producer_id(TXN, 10_000, -1, -1) == (0, pid, 2)
    await svc.stop()


class GatedTxnLog(MemoryTxnLog):
    """Appends wait until `gate` opens: a request can be cancelled in the middle of one."""

    def __init__(self):
        super().__init__()
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def append(self, partition: int, batch: bytes) -> int:
        self.waiting.set()
        await self.gate.wait()
        return await super().append(partition, batch)


@pytest.mark.parametrize("request_name", ["add_partitions", "end_txn"])
async def test_a_request_cancelled_mid_write_still_completes_its_transition(request_name):
    """A client killed while its AddPartitionsToTxn or EndTxn is being written cancels the request; the record
    is still written and its state holds, so the next InitProducerId (the restarted client) aborts the open
    transaction instead of answering CONCURRENT_TRANSACTIONS for ever (a CI run's eos-loop test)."""
    txn_log, markers = GatedTxnLog(), RecordingMarkers()
    txn_log.gate.set()
    svc = service(txn_log, markers)
    await svc.load_all()
    _, pid, epoch = await svc.init_producer_id(TXN, 10_000, -1, -1)
    if request_name == "end_txn":
        await svc.add_partitions(TXN, pid, epoch, {("a", 0)})
    txn_log.gate.clear()
    txn_log.waiting.clear()
    call = (svc.add_partitions(TXN, pid, epoch, {("a", 0)}) if request_name == "add_partitions"
            else svc.end_txn(TXN, pid, epoch, True))
    request = asyncio.ensure_future(call)
    await txn_log.waiting.wait()
    request.cancel()
    await asyncio.gather(request, return_exceptions=True)
    txn_log.gate.set()
    await svc.settle_background()
    expected = TxnState.ONGOING if request_name == "add_partitions" else TxnState.COMPLETE_COMMIT
    assert svc.coordinator.transactions[TXN].state == expected
    assert txn_log.states()[-1] == expected
    code, _, _ = await svc.init_producer_id(TXN, 10_000, -1, -1)
    await svc.settle_background()
    if request_name == "add_partitions":
        assert code == ErrorCode.CONCURRENT_TRANSACTIONS  # the abort of the open transaction has started
        assert markers.written == [("a", 0, pid, 1, 0)]
        assert await svc.init_producer_id(TXN, 10_000, -1, -1) == (0, pid, 2)
    else:
        assert code == ErrorCode.NONE
        assert markers.written == [("a", 0, pid, 0, 1)]
    await svc.stop()


@pytest.mark.parametrize("commit", [True, False])
async def test_a_restart_finishes_a_transaction_left_in_prepare(commit):
    txn_log = MemoryTxnLog()
    svc = service(txn_log)
    await svc.load_all()
    _, pid, epoch = await svc.init_producer_id(TXN, 10_000, -1, -1)
    await svc.add_partitions(TXN, pid, epoch, {("a", 0)})
    plan = svc.coordinator.end_txn(svc.now_ms(), TXN, pid, epoch, commit)
    await svc._run(plan)  # the Prepare record is written; the broker dies before any marker
    await svc.stop()
    markers = RecordingMarkers()
    again = service(txn_log, markers)
    await again.load_all()
    assert again.coordinator_error(TXN) == 0
    await again.settle_background()
    assert markers.written == [("a", 0, pid, 0, 1 if commit else 0)]
    assert again.coordinator.transactions[TXN].state == (TxnState.COMPLETE_COMMIT if commit
                                                         else TxnState.COMPLETE_ABORT)
    await again.stop()


async def test_an_idle_transactional_id_expires_with_a_tombstone_and_comes_back_as_a_new_producer():
    clock, txn_log = ManualClock(1_000), MemoryTxnLog()
    ids = itertools.count(100)

    async def allocate() -> int:
        return next(ids)

    config = TxnConfig(num_partitions=2, max_timeout_ms=60_000, id_expiration_ms=20_000)
    svc = TransactionService(config, txn_log, RecordingMarkers(), allocate, clock, 1_000, expiry_interval_ms=10_000)
    await svc.load_all()
    _, pid, epoch = await svc.init_producer_id(TXN, 60_000, -1, -1)
    await svc.add_partitions(TXN, pid, epoch, {("a", 0)})
    clock.advance(30_000)  # idle past the expiration, but a transaction under way is never expired
    await svc.settle_background()
    assert svc.coordinator.transactions[TXN].state == TxnState.ONGOING
    assert await svc.end_txn(TXN, pid, epoch, True) == ErrorCode.NONE
    await svc.settle_background()
    ended = svc.coordinator.transactions[TXN].last_update_ms
    clock.advance(ended + 20_000 - clock.now_ms() - 1)
    await svc.settle_background()
    assert TXN in svc.coordinator.transactions, "not idle for transactional.id.expiration.ms yet"
    clock.advance(10_000)  # the next check after the id has been idle that long
    await svc.settle_background()
    assert TXN not in svc.coordinator.transactions
    partition = svc.coordinator.partition_for(TXN)
    assert txn_log.rows[partition][-1] == (txn_records.encode_key(TXN), None), "a tombstone in __transaction_state"
    await svc.stop()
    again = TransactionService(config, txn_log, RecordingMarkers(), allocate, clock, 1_000)
    await again.load_all()
    assert again.describe(TXN) is None, "the tombstone is read back on load"
    assert await again.init_producer_id(TXN, 10_000, -1, -1) == (0, 101, 0), "a new producer id"
    await again.stop()
