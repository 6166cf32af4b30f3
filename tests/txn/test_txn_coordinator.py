"""The pure transaction coordinator: every transition and refusal, without I/O."""

from __future__ import annotations

import pytest

from kafkalite.protocol.errors import ErrorCode
from kafkalite.txn import TransactionCoordinator, TxnConfig, TxnState
from kafkalite.txn import records

TXN = "txn-1"
P0, P1 = ("t", 0), ("t", 1)


def coordinator() -> TransactionCoordinator:
    c = TransactionCoordinator(TxnConfig(num_partitions=3, max_timeout_ms=60_000))
    for p in range(3):
        c.load_partition(p, [], 0)
    return c


def run(c, plan):
    """The shell's part: the record is written, so the state holds. Returns the plan."""
    assert plan.error == ErrorCode.NONE, ErrorCode(plan.error).name
    c.apply(plan)
    return plan


def init(c, now=0, expected=(-1, -1), timeout=10_000):
    new_id = 1000 + len(c.transactions) if c.needs_producer_id(TXN) else -1
    return run(c, c.init_producer_id(now, TXN, timeout, *expected, new_producer_id=new_id))


def test_a_new_transactional_id_gets_epoch_0_and_each_init_bumps_it():
    c = coordinator()
    first = init(c)
    assert (first.producer_id, first.producer_epoch) == (1000, 0)
    second = init(c)
    assert (second.producer_id, second.producer_epoch) == (1000, 1)
    assert c.transactions[TXN].state == TxnState.EMPTY


def test_timeout_above_the_maximum_is_refused():
    c = coordinator()
    assert c.init_producer_id(0, TXN, 60_001, new_producer_id=1).error == ErrorCode.INVALID_TRANSACTION_TIMEOUT
    assert c.init_producer_id(0, TXN, 0, new_producer_id=1).error == ErrorCode.INVALID_TRANSACTION_TIMEOUT


def test_commit_goes_through_prepare_and_complete():
    c = coordinator()
    pid = init(c).producer_id
    run(c, c.add_partitions(5, TXN, pid, 0, {P0}))
    assert c.add_partitions(6, TXN, pid, 0, {P0}).writes is False  # already in: nothing to write
    run(c, c.add_partitions(7, TXN, pid, 0, {P1}))
    meta = c.transactions[TXN]
    assert (meta.state, meta.partitions, meta.start_ms) == (TxnState.ONGOING, {P0, P1}, 5)
    plan = run(c, c.end_txn(8, TXN, pid, 0, commit=True))
    assert plan.markers.state == TxnState.PREPARE_COMMIT and plan.markers.partitions == {P0, P1}
    assert c.end_txn(8, TXN, pid, 0, commit=True).error == ErrorCode.CONCURRENT_TRANSACTIONS
    assert c.add_partitions(8, TXN, pid, 0, {P0}).error == ErrorCode.CONCURRENT_TRANSACTIONS
    run(c, c.complete(9, TXN))
    meta = c.transactions[TXN]
    assert (meta.state, meta.partitions) == (TxnState.COMPLETE_COMMIT, frozenset())
    assert c.end_txn(10, TXN, pid, 0, commit=True).error == ErrorCode.NONE  # a retry
    assert c.end_txn(10, TXN, pid, 0, commit=False).error == ErrorCode.INVALID_TXN_STATE
    # the next transaction starts from scratch
    run(c, c.add_partitions(11, TXN, pid, 0, {P1}))
    assert c.transactions[TXN].partitions == {P1} and c.transactions[TXN].start_ms == 11


def test_end_without_a_transaction_is_invalid_state():
    c = coordinator()
    pid = init(c).producer_id
    assert c.end_txn(0, TXN, pid, 0, commit=True).error == ErrorCode.INVALID_TXN_STATE


def test_unknown_ids_and_old_epochs_are_refused():
    c = coordinator()
    pid = init(c).producer_id
    init(c)  # epoch 1: epoch 0 is a zombie now
    assert c.add_partitions(0, "other", pid, 1, {P0}).error == ErrorCode.INVALID_PRODUCER_ID_MAPPING
    assert c.add_partitions(0, TXN, pid + 1, 1, {P0}).error == ErrorCode.INVALID_PRODUCER_ID_MAPPING
    assert c.add_partitions(0, TXN, pid, 0, {P0}).error == ErrorCode.PRODUCER_FENCED
    run(c, c.add_partitions(0, TXN, pid, 1, {P0}))
    assert c.end_txn(0, TXN, pid, 0, commit=True).error == ErrorCode.PRODUCER_FENCED
    assert c.check_offset_commit(TXN, pid, 0, P0) == ErrorCode.PRODUCER_FENCED
    assert c.check_offset_commit(TXN, pid, 1, P1) == ErrorCode.INVALID_TXN_STATE
    assert c.check_offset_commit(TXN, pid, 1, P0) == ErrorCode.NONE


def test_init_with_a_transaction_open_fences_and_aborts_it_first():
    c = coordinator()
    pid = init(c).producer_id
    run(c, c.add_partitions(0, TXN, pid, 0, {P0}))
    plan = c.init_producer_id(1, TXN, 10_000)
    assert plan.error == ErrorCode.CONCURRENT_TRANSACTIONS
    assert plan.markers.state == TxnState.PREPARE_ABORT and plan.markers.producer_epoch == 1  # the fence
    c.apply(plan)
    assert c.init_producer_id(2, TXN, 10_000).error == ErrorCode.CONCURRENT_TRANSACTIONS  # markers pending
    run(c, c.complete(3, TXN))
    again = init(c, now=4)
    assert (again.producer_id, again.producer_epoch) == (pid, 2)


def test_expired_transactions_are_aborted_with_a_fenced_epoch():
    c = coordinator()
    pid = init(c, timeout=1000).producer_id
    run(c, c.add_partitions(100, TXN, pid, 0, {P0}))
    assert c.expired(1099) == []
    [plan] = c.expired(1100)
    assert (plan.markers.state, plan.markers.producer_epoch) == (TxnState.PREPARE_ABORT, 1)
    c.apply(plan)
    run(c, c.complete(1101, TXN))
    assert c.end_txn(1102, TXN, pid, 0, commit=True).error == ErrorCode.PRODUCER_FENCED


def test_kip_360_recovery_and_its_retry():
    c = coordinator()
    pid = init(c).producer_id
    bumped = init(c, expected=(pid, 0))
    assert (bumped.producer_id, bumped.producer_epoch) == (pid, 1)
    retried = c.init_producer_id(0, TXN, 10_000, pid, 0)  # the answer was lost: the same epoch again
    assert (retried.error, retried.producer_id, retried.producer_epoch, retried.writes) == (0, pid, 1, False)
    assert c.init_producer_id(0, TXN, 10_000, pid, 7).error == ErrorCode.PRODUCER_FENCED
    assert c.init_producer_id(0, TXN, 10_000, pid + 1, 1).error == ErrorCode.PRODUCER_FENCED


def test_an_exhausted_epoch_gets_a_new_producer_id():
    c = coordinator()
    init(c)
    c.transactions[TXN].producer_epoch = 32766
    assert c.needs_producer_id(TXN)
    plan = run(c, c.init_producer_id(0, TXN, 10_000, new_producer_id=77))
    assert (plan.producer_id, plan.producer_epoch) == (77, 0)
    assert c.transactions[TXN].last_producer_id == 1000


def test_a_failed_write_leaves_the_old_state():
    c = coordinator()
    pid = init(c).producer_id
    plan = c.add_partitions(0, TXN, pid, 0, {P0})
    assert c.add_partitions(0, TXN, pid, 0, {P1}).error == ErrorCode.CONCURRENT_TRANSACTIONS
    c.abandon(plan)
    assert c.transactions[TXN].state == TxnState.EMPTY
    run(c, c.add_partitions(0, TXN, pid, 0, {P1}))


def test_state_is_rebuilt_from_its_records_last_one_wins():
    c = coordinator()
    pid = init(c).producer_id
    plans = [run(c, c.add_partitions(1, TXN, pid, 0, {P0, P1})), run(c, c.end_txn(2, TXN, pid, 0, commit=False))]
    rows = [(p.key, p.value) for p in plans] + [(records.encode_key("gone"), None)]
    fresh = TransactionCoordinator(TxnConfig(num_partitions=3))
    partition = fresh.partition_for(TXN)
    unfinished = fresh.load_partition(partition, rows, 10)
    assert [m.transactional_id for m in unfinished] == [TXN]
    meta = fresh.transactions[TXN]
    assert (meta.state, meta.partitions, meta.producer_id, meta.start_ms) == (TxnState.PREPARE_ABORT, {P0, P1}, pid, 1)
    assert fresh.coordinator_error(TXN) == ErrorCode.NONE
    other = next(t for t in ("a", "b", "c", "d") if fresh.partition_for(t) != partition)
    assert fresh.coordinator_error(other) == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS


@pytest.mark.parametrize("state", list(TxnState))
def test_value_layout_round_trips(state):
    c = coordinator()
    init(c)
    meta = c.transactions[TXN].copy(state=state, partitions=frozenset({P0, ("u", 3)}), start_ms=5, last_update_ms=6)
    back = records.decode_value(TXN, records.encode_value(meta))
    assert (back.state, back.partitions, back.producer_id, back.producer_epoch, back.timeout_ms, back.start_ms,
            back.last_update_ms) == (state, meta.partitions, meta.producer_id, 0, meta.timeout_ms, 5, 6)
    assert records.decode_key(records.encode_key(TXN)) == TXN


def test_value_bytes_are_kafkas_version_0_layout():
    c = coordinator()
    init(c)
    meta = c.transactions[TXN].copy(state=TxnState.ONGOING, partitions=frozenset({("a", 1)}), start_ms=2,
                                    last_update_ms=3, timeout_ms=60000)
    expected = bytes.fromhex(
        "0000"  # version 0
        "00000000000003e8"  # producer id 1000
        "0000" "0000ea60" "01"  # epoch 0, timeout 60000, status Ongoing
        "00000001" "000161" "00000001" "00000001"  # [{topic "a", partitions [1]}]
        "0000000000000003" "0000000000000002")  # last update, start
    assert records.encode_value(meta) == expected
    assert records.encode_key("ab") == bytes.fromhex("0000" "00026162")
