"""Transactions in the partition log: open transactions and the last stable offset, markers (epoch checks and
fencing), the aborted-transaction index (.txnindex) and its rebuild after a crash."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kafkalite.broker.transactions import marker_batch
from crc32c import crc32c

from kafkalite.log import InvalidProducerEpoch, LogConfig
from kafkalite.log.errors import InvalidTxnState, TransactionCoordinatorFenced
from kafkalite.log.fs_faulty import FaultyFileSystem
from kafkalite.log.producer_state import ProducerStateTable
from kafkalite.log.txn_index import AbortedTxn
from kafkalite.protocol.record_batch import TRANSACTIONAL_BIT, build_batch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "log"))
from logstore_helpers import DIR, open_log  # noqa: E402

PID, OTHER = 7000, 7001


def txn_batch(*values: bytes, pid: int = PID, epoch: int = 0, seq: int = 0) -> bytearray:
    return bytearray(build_batch([(None, v) for v in values], timestamps=1000, producer_id=pid, producer_epoch=epoch,
                                 base_sequence=seq, attributes=TRANSACTIONAL_BIT))


def marker(commit: bool, pid: int = PID, epoch: int = 0) -> bytearray:
    return bytearray(marker_batch(pid, epoch, commit, 1000))


def plain(value: bytes) -> bytearray:
    return bytearray(build_batch([(None, value)], timestamps=1000))


def test_open_transactions_bound_the_stable_offset_until_their_markers():
    log = open_log(FaultyFileSystem())
    log.append(plain(b"before"))  # 0
    assert log.first_unstable_offset() is None
    log.append(txn_batch(b"a", b"b"))  # 1-2
    log.append(txn_batch(b"x", pid=OTHER))  # 3
    log.append(txn_batch(b"c", seq=2))  # 4
    assert log.first_unstable_offset() == 1
    log.append(marker(commit=True))  # 5
    assert log.first_unstable_offset() == 3
    log.append(marker(commit=False, pid=OTHER))  # 6
    assert log.first_unstable_offset() is None
    assert log.aborted_transactions(0, 100) == [AbortedTxn(OTHER, 3, 6, 7)]
    assert log.aborted_transactions(7, 100) == []  # the marker is before the range
    assert log.aborted_transactions(0, 3) == []  # the transaction starts after it


def test_a_marker_of_a_newer_epoch_fences_the_old_producer_and_an_older_one_is_refused():
    log = open_log(FaultyFileSystem())
    log.append(txn_batch(b"zombie", epoch=3))
    log.append(marker(commit=False, epoch=4))  # the coordinator aborted with a bumped epoch
    with pytest.raises(InvalidProducerEpoch):
        log.append(txn_batch(b"late", epoch=3, seq=1))
    with pytest.raises(InvalidProducerEpoch):
        log.append(marker(commit=True, epoch=3))
    assert log.append(txn_batch(b"successor", epoch=4)).base_offset == 2
    assert log.aborted_transactions(0, 10) == [AbortedTxn(PID, 0, 1, 2)]


@pytest.mark.parametrize("shutdown", ["clean", "kill", "checkpoint_then_kill", "index_files_lost"])
def test_open_transactions_and_the_aborted_index_survive_a_restart(shutdown):
    fs = FaultyFileSystem()
    config = LogConfig(segment_bytes=200)  # several segments, several .txnindex files
    log = open_log(fs, config)
    log.append(txn_batch(b"a"))  # 0
    log.append(marker(commit=False))  # 1
    log.append(txn_batch(b"b", pid=OTHER))  # 2: stays open
    if shutdown == "checkpoint_then_kill":
        log.checkpoint()  # the snapshot holds OTHER's open transaction
    log.append(txn_batch(b"c", seq=1))  # 3
    log.append(marker(commit=False))  # 4
    expected = [AbortedTxn(PID, 0, 1, 2), AbortedTxn(PID, 3, 4, 2)]
    assert log.aborted_transactions(0, 10) == expected
    assert [n for n in fs.listdir(DIR) if n.endswith(".txnindex")]
    if shutdown == "clean":
        log.close()
    else:
        if shutdown == "index_files_lost":
            for name in fs.listdir(DIR):
                if name.endswith(".txnindex"):
                    fs.remove(f"{DIR}/{name}")
        fs.restart(lose_unsynced="none")
    log = open_log(fs, config)
    assert log.first_unstable_offset() == 2
    assert log.aborted_transactions(0, 10) == expected
    log.append(marker(commit=True, pid=OTHER))
    assert log.first_unstable_offset() is None


def test_truncation_forgets_aborts_and_reopens_transactions_past_the_cut():
    log = open_log(FaultyFileSystem())
    log.append(txn_batch(b"a"))  # 0
    log.append(marker(commit=False))  # 1
    log.truncate_to(1)
    assert log.aborted_transactions(0, 10) == []
    assert log.first_unstable_offset() == 0


def test_retention_drops_aborts_below_the_log_start():
    fs = FaultyFileSystem()
    log = open_log(fs, LogConfig(segment_bytes=150, retention_ms=1000))
    log.append(txn_batch(b"a"))
    log.append(marker(commit=False))
    for i in range(4):
        log.append(plain(b"p%d" % i))
    log.apply_retention(10**13)
    assert log.log_start_offset > 1
    assert log.aborted_transactions(0, 100) == []
    assert not [n for n in fs.listdir(DIR) if n.endswith(".txnindex")]


def test_a_version_2_snapshot_is_still_read():
    table = ProducerStateTable()
    data = bytearray(table.encode(0))
    data[4:6] = (2).to_bytes(2, "big")  # no producers: the body is the same in versions 2 and 3
    assert ProducerStateTable.decode(bytes(data))[0] == 0


def coordinator_marker(commit: bool, coordinator_epoch: int, pid: int = PID, epoch: int = 0) -> bytearray:
    return bytearray(marker_batch(pid, epoch, commit, 1000, coordinator_epoch))


@pytest.mark.parametrize("restart", [None, "snapshot", "replay"])
def test_a_deposed_coordinators_late_marker_is_refused(restart):
    """The coordinator of epoch 5 (the leader epoch of its __transaction_state partition) took over and ended the
    transaction; a marker still under way from the coordinator of epoch 4 must not end the next one."""
    fs = FaultyFileSystem()
    log = open_log(fs)
    log.append(txn_batch(b"a"))
    log.append(coordinator_marker(commit=False, coordinator_epoch=5))
    log.append(txn_batch(b"b", seq=1))  # the producer's next transaction, open
    if restart == "snapshot":
        log.close()  # the snapshot at the log end carries the coordinator epoch
    elif restart == "replay":
        fs.restart(lose_unsynced="none")  # no snapshot: the marker is replayed from the log
    if restart is not None:
        log = open_log(fs)
    with pytest.raises(TransactionCoordinatorFenced):
        log.append(coordinator_marker(commit=True, coordinator_epoch=4))
    assert log.first_unstable_offset() == 2, "the open transaction is still open"
    log.append(coordinator_marker(commit=True, coordinator_epoch=5))
    assert log.first_unstable_offset() is None


def test_a_version_3_snapshot_is_read_with_no_coordinator_epoch():
    table = ProducerStateTable()
    header = _marker_header()
    table.end_transaction(header, 1000, coordinator_epoch=-1)
    data = bytearray(table.encode(9))
    body = data[24:]
    v3_body = body[:-4]  # version 3 has no coordinator epoch at the end of the one producer's entry
    v3 = bytearray(data[:24]) + v3_body
    v3[4:6] = (3).to_bytes(2, "big")
    v3[20:24] = crc32c(bytes(v3_body)).to_bytes(4, "big")
    offset, decoded = ProducerStateTable.decode(bytes(v3))
    assert offset == 9 and decoded.producers[header.producer_id].coordinator_epoch == -1


def _marker_header():
    from kafkalite.log.segment import header_of
    from kafkalite.protocol.record_batch import RecordBatch
    return header_of(RecordBatch(memoryview(coordinator_marker(commit=True, coordinator_epoch=2))), 0)


def test_a_batch_verified_before_its_transaction_ended_is_refused():
    """KIP-890's verification guard: the coordinator said yes, then (while the answer travelled) the transaction
    was aborted and its marker written here; the late first batch must not open a transaction nobody ends."""
    log = open_log(FaultyFileSystem())
    guard = log.begin_verification(PID)
    log.append(marker(commit=False))  # the coordinator aborts meanwhile (its marker reaches every partition)
    with pytest.raises(InvalidTxnState):
        log.append(txn_batch(b"late"), verification_guard=guard)
    assert log.first_unstable_offset() is None
    fresh = log.begin_verification(PID)  # the next transaction's first batch, verified again
    log.append(txn_batch(b"next"), verification_guard=fresh)
    assert log.first_unstable_offset() == 1
