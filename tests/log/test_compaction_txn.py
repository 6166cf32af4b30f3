"""Compaction of transactional data, as Kafka's cleaner: aborted batches go, committed ones are compacted as any
other, open transactions are never touched, markers stay until their transaction's batches are gone and then for
delete.retention.ms (a horizon stamped in the batch), each producer's last batch stays so producer state rebuilt
from the log still deduplicates and fences, and the aborted-transaction index matches what recovery rebuilds."""

from __future__ import annotations

import time

import pytest

from kafkalite.broker.transactions import marker_batch
from kafkalite.clock import ManualClock
from kafkalite.log import InvalidProducerEpoch, LogConfig
from kafkalite.log.fs_faulty import FaultyFileSystem, SimulatedCrash
from kafkalite.log.txn_index import AbortedTxn
from kafkalite.protocol.record_batch import (
    CONTROL_BIT, DELETE_HORIZON_BIT, TRANSACTIONAL_BIT, build_batch, iter_batches,
)

from brokerproc import missing
from logstore_helpers import DIR, batch, open_log, read_all

P, Q = 9000, 9001
RETENTION = 1000
# Any dirty segment makes a round due; the tests roll segments themselves.
CONFIG = LogConfig(cleanup_policy="compact", delete_retention_ms=RETENTION, min_cleanable_dirty_ratio=0.01)
START = 1_000


def txn(pid: int, *pairs: tuple[bytes, bytes | None], seq: int, epoch: int = 0, ts: int = START) -> bytearray:
    return bytearray(build_batch(list(pairs), timestamps=ts, producer_id=pid, producer_epoch=epoch,
                                 base_sequence=seq, attributes=TRANSACTIONAL_BIT))


def marker(pid: int, commit: bool, epoch: int = 0, ts: int = START) -> bytearray:
    return bytearray(marker_batch(pid, epoch, commit, ts))


def plain(key: bytes, value: bytes | None, ts: int = START) -> bytearray:
    return batch(value, key=key, ts=ts)


def new_log(fs=None, clock=None):
    clock = clock or ManualClock(START)
    return open_log(fs or FaultyFileSystem(), CONFIG, clock=clock.now_ms), clock


def round_(log, clock, dirt: int | None = None) -> None:
    """Close the active segment (after one more batch of a new key when `dirt` is given, so a round is due),
    checkpoint, and compact at the clock's time."""
    if dirt is not None:
        log.append(plain(b"dirt%d" % dirt, b"x", ts=clock.now_ms()))
    log.roll()
    log.checkpoint()
    log.compact(clock.now_ms())


def values(log) -> list[bytes | None]:
    return [r.value for b in read_all(log) if not b.attributes & CONTROL_BIT for r in b.records()]


def batch_at(log, offset: int):
    found = [b for b in read_all(log) if b.base_offset <= offset <= b.last_offset]
    return found[0] if found else None


def entries(log) -> list[tuple[int, int, int]]:
    return [(e.producer_id, e.first_offset, e.last_offset) for e in log.aborted_transactions(0, log.log_end_offset)]


def test_aborted_records_are_removed_and_never_supersede_committed_ones():
    log, clock = new_log()
    log.append(plain(b"a", b"a-plain"))  # 0
    log.append(txn(P, (b"a", b"a-committed"), (b"b", b"b-committed"), seq=0))  # 1-2
    log.append(txn(Q, (b"a", b"a-aborted"), (b"c", b"c-aborted"), seq=0))  # 3-4
    log.append(marker(P, commit=True))  # 5
    log.append(marker(Q, commit=False))  # 6
    log.append(txn(Q, (b"d", b"d-later"), seq=2))  # 7
    log.append(marker(Q, commit=True))  # 8
    assert entries(log) == [(Q, 3, 6)]
    round_(log, clock)
    assert values(log) == [b"a-committed", b"b-committed", b"d-later"]
    # The markers stay: the round still read batches of their transactions.
    assert [b.base_offset for b in read_all(log) if b.attributes & CONTROL_BIT] == [5, 6, 8]
    assert entries(log) == []  # no batch of the aborted transaction is left
    assert all(b.crc_ok() for b in read_all(log))


def test_an_open_transaction_is_not_compacted_until_it_ends():
    log, clock = new_log()
    log.append(plain(b"a", b"a1"))
    log.append(plain(b"a", b"a2"))
    log.roll()
    open_at = log.log_end_offset
    log.append(txn(P, (b"a", b"a-open"), (b"b", b"b-open"), seq=0))
    log.roll()
    log.append(plain(b"a", b"a3"))
    log.append(plain(b"b", b"b3"))
    log.roll()
    log.checkpoint()
    assert log.first_unstable_offset() == open_at
    untouched = [(seg.base_offset, log.fs.read_file(seg.path(".log"))) for seg in log.segments
                 if seg.base_offset >= open_at]
    log.compact(clock.now_ms())
    assert values(log) == [b"a2", b"a-open", b"b-open", b"a3", b"b3"]
    assert [(seg.base_offset, log.fs.read_file(seg.path(".log"))) for seg in log.segments
            if seg.base_offset >= open_at] == untouched
    assert log.cleaner_point == open_at  # the segment holding the last stable offset is the first uncleanable
    log.append(marker(P, commit=True))  # the transaction commits: its records are compacted as any others
    round_(log, clock)
    assert values(log) == [b"a3", b"b3"]


def test_a_marker_stays_while_its_transaction_has_batches_then_for_delete_retention_ms():
    log, clock = new_log()
    log.append(txn(P, (b"x", b"x1"), seq=0))  # 0
    log.append(marker(P, commit=True))  # 1
    log.append(txn(P, (b"y", b"y1"), seq=1))  # 2: P's last batch
    log.append(marker(P, commit=True))  # 3
    log.append(plain(b"x", b"x2"))  # 4: supersedes x1
    round_(log, clock)
    assert batch_at(log, 0) is None  # x1 is gone, and its whole batch with it
    first = batch_at(log, 1)
    assert first is not None and not first.attributes & DELETE_HORIZON_BIT  # its batch was still there
    clock.advance(10)
    round_(log, clock, dirt=1)
    stamped = batch_at(log, 1)  # nothing of its transaction is left: the horizon is stamped
    assert stamped.attributes & DELETE_HORIZON_BIT and stamped.base_timestamp == clock.now_ms() + RETENTION
    assert stamped.crc_ok() and [r.timestamp for r in stamped.records()] == [START]  # the record keeps its time
    horizon = stamped.base_timestamp
    clock.advance(horizon - 1 - clock.now_ms())
    round_(log, clock, dirt=2)
    assert batch_at(log, 1) is not None  # a millisecond before the horizon
    clock.advance(1)
    round_(log, clock, dirt=3)
    assert batch_at(log, 1) is None
    # The marker of P's last batch is never stamped: that batch stays, so its transaction still has one.
    last = batch_at(log, 3)
    assert last is not None and not last.attributes & DELETE_HORIZON_BIT
    assert values(log) == [b"y1", b"x2", b"x", b"x", b"x"]


def test_the_aborted_index_after_compaction_is_what_recovery_rebuilds():
    fs = FaultyFileSystem()
    log, clock = new_log(fs)
    log.append(txn(Q, (b"a", b"q1"), seq=0))  # 0
    log.append(marker(Q, commit=False))  # 1
    log.append(txn(P, (b"b", b"p1"), seq=0))  # 2
    log.append(marker(P, commit=True))  # 3
    log.append(txn(Q, (b"c", b"q2"), seq=1))  # 4: Q's last batch, aborted
    log.append(marker(Q, commit=False))  # 5
    log.roll()
    log.append(plain(b"e", b"after"))  # 6, in the next segment
    assert entries(log) == [(Q, 0, 1), (Q, 4, 5)]
    round_(log, clock)
    assert values(log) == [b"p1", b"after"]
    empty = batch_at(log, 4)  # kept as a header without records: Q's sequence and epoch stay in the log
    assert (empty.records_count, empty.producer_id, empty.base_sequence, empty.is_transactional) == (0, Q, 1, True)
    assert entries(log) == [(Q, 4, 5)]  # the first transaction has nothing left; the second still a batch

    log.close()
    log, _ = new_log(fs, clock)
    assert log.recovery.clean and entries(log) == [(Q, 4, 5)]  # as written to the .txnindex files
    log.close()
    for name in fs.listdir(DIR):  # lose the snapshots and the index: both are rebuilt from the whole log
        if name.endswith((".snapshot", ".txnindex")):
            fs.remove(f"{DIR}/{name}")
    log, _ = new_log(fs, clock)
    assert entries(log) == [(Q, 4, 5)]
    assert log.first_unstable_offset() is None  # no transaction reopened by the batches compaction left
    assert values(log) == [b"p1", b"after"]


def test_a_producers_last_batch_survives_so_its_retry_is_still_a_duplicate():
    fs = FaultyFileSystem()
    log, clock = new_log(fs)
    retry = bytes(batch(b"v1", key=b"k", pid=P, epoch=0, seq=0))
    log.append(bytearray(retry))  # 0: P's only batch
    log.append(plain(b"k", b"v2"))  # 1: supersedes it
    round_(log, clock)
    assert values(log) == [b"v2"]
    assert batch_at(log, 0).records_count == 0
    log.close()
    for name in fs.listdir(DIR):  # producer state must come from the log itself (as on a new replica)
        if name.endswith(".snapshot"):
            fs.remove(f"{DIR}/{name}")
    log, _ = new_log(fs, clock)
    result = log.append(bytearray(retry))
    assert result.duplicate and result.base_offset == 0
    assert values(log) == [b"v2"]


def test_a_fencing_marker_that_is_a_producers_last_write_is_kept():
    fs = FaultyFileSystem()
    log, clock = new_log(fs)
    log.append(txn(P, (b"k", b"zombie"), seq=0, epoch=0))  # 0
    log.append(marker(P, commit=False, epoch=1))  # 1: the coordinator aborted it with a bumped epoch
    for i in range(3):  # rounds enough to stamp and remove any other marker
        round_(log, clock, dirt=i)
        clock.advance(2 * RETENTION)
    assert batch_at(log, 0) is None and batch_at(log, 1) is not None
    log.close()
    for name in fs.listdir(DIR):
        if name.endswith(".snapshot"):
            fs.remove(f"{DIR}/{name}")
    log, _ = new_log(fs, clock)
    with pytest.raises(InvalidProducerEpoch):
        log.append(txn(P, (b"k", b"late"), seq=1, epoch=0))


def test_an_aborted_transaction_whose_marker_is_not_in_the_round_loses_its_batches_but_keeps_its_entry():
    log, clock = new_log()
    log.append(txn(Q, (b"a", b"q1"), seq=0))  # 0
    log.append(txn(P, (b"b", b"p1"), seq=0))  # 1: P's last batch
    log.roll()
    log.checkpoint()  # the recovery point: only the first segment can be compacted
    log.append(txn(Q, (b"a", b"q2"), seq=1))  # 2: Q's last batch
    log.append(marker(Q, commit=False))  # 3: its marker is in the second segment
    log.append(marker(P, commit=True))  # 4
    log.roll()
    log.compact(clock.now_ms())
    assert log.cleaner_point == 2
    assert values(log) == [b"p1", b"q2"]  # q1 is gone with its transaction; q2 waits for a round of its own
    assert log.aborted_transactions(0, 100) == [AbortedTxn(Q, 0, 3, 1)]  # its marker is not compacted yet


def committed_view(log) -> dict[bytes, bytes | None]:
    """Each key's newest value as a read_committed consumer sees the log: the batches of the transactions in the
    aborted index are left out (every transaction here has ended, so the whole log is below the LSO)."""
    aborted = log.aborted_transactions(0, log.log_end_offset)
    view = {}
    for b in read_all(log):
        if b.attributes & CONTROL_BIT or (b.is_transactional and any(
                e.producer_id == b.producer_id and e.first_offset <= b.base_offset <= e.last_offset for e in aborted)):
            continue
        view.update((r.key, r.value) for r in b.records())
    return view


def test_a_crash_at_every_step_of_a_transactional_round_never_shows_aborted_records_as_committed():
    config = LogConfig(cleanup_policy="compact", delete_retention_ms=RETENTION, min_cleanable_dirty_ratio=0.01,
                       segment_bytes=400)

    def prepare(fs):
        log = open_log(fs, config, clock=lambda: START)
        seqs = {P: 0, Q: 0}
        for n in range(8):  # P and Q take turns; every third transaction of each aborts
            for pid in (P, Q):
                log.append(txn(pid, (b"k%d" % (n % 3), b"%d-%d" % (pid, n)), (b"own%d-%d" % (pid, n), b"v"),
                               seq=seqs[pid]))
                seqs[pid] += 2
            for pid in (P, Q):
                log.append(marker(pid, commit=(n + pid) % 3 != 0))
        log.roll()
        log.checkpoint()
        return log

    reference = prepare(FaultyFileSystem())
    expected = committed_view(reference)
    assert len(reference.aborted_transactions(0, 1000)) > 3
    reference.compact(START)
    assert committed_view(reference) == expected
    assert all(e.first_offset >= 0 for e in reference.aborted_transactions(0, 1000))
    step = 0
    while True:
        fs = FaultyFileSystem()
        log = prepare(fs)
        fs.crash_after(step, torn=True)
        try:
            log.compact(START)
            finished = True
        except SimulatedCrash:
            finished = False
        fs.restart()
        log = open_log(fs, config, clock=lambda: START)
        assert committed_view(log) == expected, step
        if finished:
            break
        step += 1
    assert step > 10


# ------------------------------------------------------------------------------------------------ live check

def read_partition(bootstrap: str, topic: str, isolation: str) -> list[tuple[bytes, bytes]]:
    """(key, value) of every record a consumer of `isolation` gets from partition 0 up to its end."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"compaction-{isolation}",
                         "enable.auto.commit": False, "isolation.level": isolation})
    try:
        end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
        consumer.assign([TopicPartition(topic, 0, 0)])
        got = []
        deadline = time.monotonic() + 30
        # positions, not message offsets: the last offsets hold markers
        while consumer.position([TopicPartition(topic, 0)])[0].offset != end and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                got.append((msg.key(), msg.value()))
        assert consumer.position([TopicPartition(topic, 0)])[0].offset == end, f"{isolation} never reached {end}"
        return got
    finally:
        consumer.close()


@pytest.mark.interop
@pytest.mark.timeout(180)
def test_live_compaction_of_a_transactional_topic_removes_the_aborted_records(tmp_path):
    try:
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic
    except ImportError:
        missing("confluent-kafka is not installed")
    from brokerproc import BrokerProcess

    # Housekeeping (retention, checkpoint, compaction) every 100 ms; small segments, any dirt makes a round due.
    broker = BrokerProcess(str(tmp_path / "data"), "--set", "log.retention.check.interval.ms=100",
                           "--set", "transaction.state.log.num.partitions=1",
                           "--set", "offsets.topic.num.partitions=1").start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        configs = {"cleanup.policy": "compact", "segment.bytes": "2048", "min.cleanable.dirty.ratio": "0.01"}
        admin.create_topics([NewTopic("txn-compacted", 1, 1, config=configs)])["txn-compacted"].result(30)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "compacting", "linger.ms": 5})
        producer.init_transactions(30)
        committed: dict[bytes, bytes] = {}  # the newest committed value of each key
        aborted: set[bytes] = set()
        written = 0  # committed records
        for n in range(12):
            commit = n % 3 != 1
            producer.begin_transaction()
            records = [(b"k%d" % k, b"%s-%d-%d-" % (b"c" if commit else b"a", n, k) + b"x" * 100) for k in range(8)]
            records.append((b"own-%d" % n, b"own-value-%d" % n))  # keys shared by every transaction, one of its own
            for key, value in records:
                producer.produce("txn-compacted", key=key, value=value, partition=0)
            if commit:
                committed.update(records)
                written += len(records)
                producer.commit_transaction(30)
            else:
                aborted.update(value for _, value in records)
                producer.flush(30)
                producer.abort_transaction(30)
        # A producer whose only transaction aborts: compaction keeps its last batch as a header without records,
        # which the consumers below must read through.
        aborter = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "aborting", "linger.ms": 5})
        aborter.init_transactions(30)
        aborter.begin_transaction()
        for k in range(8):
            aborter.produce("txn-compacted", key=b"k%d" % k, value=b"aborter-%d" % k, partition=0)
            aborted.add(b"aborter-%d" % k)
        aborter.flush(30)
        aborter.abort_transaction(30)
        plain = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
        for i in range(30):  # later segments, so every transaction's segments are closed and compactable
            plain.produce("txn-compacted", key=b"fill-%d" % i, value=b"f" * 100, partition=0)
            committed[b"fill-%d" % i] = b"f" * 100
            written += 1
        assert plain.flush(30) == 0

        deadline = time.monotonic() + 90
        while True:
            uncommitted = read_partition(broker.bootstrap, "txn-compacted", "read_uncommitted")
            if not any(v in aborted for _, v in uncommitted) or time.monotonic() > deadline:
                break
            plain.produce("txn-compacted", key=b"dirt", value=b"d", partition=0)  # dirt for the next round
            assert plain.flush(30) == 0
            committed[b"dirt"] = b"d"
            written += 1
        assert not any(v in aborted for _, v in uncommitted), "compaction never removed the aborted records"
        assert dict(uncommitted) == committed  # the newest value of every key is the one last committed
        assert len(uncommitted) < written, "nothing committed was compacted"
        read_committed = read_partition(broker.bootstrap, "txn-compacted", "read_committed")
        assert read_committed == uncommitted
        stored = [b for f in sorted((tmp_path / "data" / "txn-compacted-0").glob("*.log"))
                  for b in iter_batches(memoryview(f.read_bytes()))]
        assert any(b.records_count == 0 and b.is_transactional and not b.is_control for b in stored), \
            "the aborting producer's last batch was not kept as an empty batch"
    finally:
        broker.kill()
