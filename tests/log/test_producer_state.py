"""Idempotent producer state: duplicates, sequence gaps, epochs, and retries across restarts."""

import struct
from types import SimpleNamespace

import pytest

from kafkalite.log import InvalidProducerEpoch, LogConfig, OutOfOrderSequence
from kafkalite.log.fs_faulty import FaultyFileSystem
from kafkalite.log.producer_state import ProducerStateTable
from kafkalite.protocol.record_batch import TRANSACTIONAL_BIT, crc32c

from logstore_helpers import DIR, batch, open_log, values

PID = 4000
DAY = 86_400_000  # producer.id.expiration.ms default
T0 = 1_700_000_000_000


def produce(log, seq, *vals, epoch=0, pid=PID, ts=1000):
    return log.append(batch(*vals, pid=pid, epoch=epoch, seq=seq, ts=ts))


def test_duplicates_of_any_of_the_last_five_batches_return_the_original_offsets():
    log = open_log(FaultyFileSystem())
    results = [produce(log, 2 * i, b"a%d" % i, b"b%d" % i) for i in range(6)]
    assert [r.base_offset for r in results] == [0, 2, 4, 6, 8, 10]
    for i in range(1, 6):
        again = produce(log, 2 * i, b"a%d" % i, b"b%d" % i)
        assert again.duplicate and again.base_offset == 2 * i and again.last_offset == 2 * i + 1
    assert log.log_end_offset == 12
    with pytest.raises(OutOfOrderSequence):  # batch 0 fell out of the window of five
        produce(log, 0, b"a0", b"b0")


def test_sequence_rules():
    log = open_log(FaultyFileSystem())
    assert produce(log, 17, b"x").base_offset == 0  # unknown producer: any sequence
    with pytest.raises(OutOfOrderSequence):
        produce(log, 19, b"gap")
    with pytest.raises(OutOfOrderSequence):
        produce(log, 17, b"x", b"different length")  # not the same batch, not the next one
    assert produce(log, 18, b"y").base_offset == 1
    with pytest.raises(OutOfOrderSequence):
        produce(log, 5, b"new epoch", epoch=1)  # a new epoch starts at 0
    assert produce(log, 0, b"z", epoch=1).base_offset == 2
    with pytest.raises(InvalidProducerEpoch):
        produce(log, 19, b"old", epoch=0)
    assert produce(log, 0, b"other", pid=PID + 1).base_offset == 3  # producers are independent
    assert log.append(batch(b"plain")).base_offset == 4  # non-idempotent batches are not checked


def test_sequence_wraps_at_int32_max():
    log = open_log(FaultyFileSystem())
    produce(log, 2**31 - 2, b"a", b"b")  # sequences 2^31-2 and 2^31-1
    assert produce(log, 0, b"c").base_offset == 2
    assert produce(log, 2**31 - 2, b"a", b"b").duplicate


@pytest.mark.parametrize("shutdown", ["clean", "kill", "power_cut_after_flush", "checkpoint_then_kill"])
def test_retries_are_deduplicated_across_restarts(shutdown):
    fs = FaultyFileSystem()
    config = LogConfig(segment_bytes=300)
    log = open_log(fs, config)
    for i in range(10):
        produce(log, i, b"v%d" % i)
    if shutdown == "checkpoint_then_kill":
        log.checkpoint()
        produce(log, 10, b"v10")
        produce(log, 11, b"v11")
    if shutdown == "clean":
        log.close()
    elif shutdown == "kill":
        fs.restart(lose_unsynced="none")
    else:
        log.flush()
        fs.restart(lose_unsynced="all")
    log = open_log(fs, config)
    last = log.log_end_offset - 1
    retry = produce(log, last, b"v%d" % last)
    assert retry.duplicate and retry.base_offset == last
    assert produce(log, last + 1, b"next").base_offset == last + 1
    with pytest.raises(OutOfOrderSequence):
        produce(log, last + 5, b"gap")


def test_state_rolls_back_with_truncation_and_lost_tail():
    fs = FaultyFileSystem()
    log = open_log(fs)
    for i in range(6):
        produce(log, i, b"v%d" % i)
    log.checkpoint()  # snapshot at 6
    log.truncate_to(3)  # snapshot at 6 is now beyond the log end: rebuilt from the batches
    assert not produce(log, 3, b"v3-again").duplicate
    assert log.log_end_offset == 4
    for i in range(4, 8):
        produce(log, i, b"w%d" % i)
    log.flush()
    produce(log, 8, b"lost")  # never fsynced
    fs.restart()
    log = open_log(fs)
    assert log.log_end_offset == 8
    assert not produce(log, 8, b"lost").duplicate  # the lost batch is not remembered
    assert values(log)[-1] == b"lost"


# -- expiry (producer.id.expiration.ms) ----------------------------------------------------------------------------

class Clock:
    def __init__(self, now: int):
        self.now = now

    def __call__(self) -> int:
        return self.now


def newest_snapshot(fs) -> tuple[int, ProducerStateTable]:
    newest = max(n for n in fs.listdir(DIR) if n.endswith(".snapshot"))
    return ProducerStateTable.decode(fs.read_file(f"{DIR}/{newest}"))


def test_producers_older_than_the_window_are_forgotten_younger_ones_kept():
    clock = Clock(T0)
    log = open_log(FaultyFileSystem(), clock=clock)
    assert LogConfig().producer_id_expiration_ms == DAY
    produce(log, 0, b"old0")
    produce(log, 1, b"old1")
    clock.now = T0 + DAY // 2
    produce(log, 0, b"young", pid=PID + 1)

    log.apply_retention(T0 + DAY)  # exactly one window old: kept, still deduplicated and sequence-checked
    assert produce(log, 1, b"old1").duplicate
    with pytest.raises(OutOfOrderSequence):
        produce(log, 7, b"gap")

    log.apply_retention(T0 + DAY + 1)  # older than the window: forgotten
    clock.now = T0 + DAY + 1
    again = produce(log, 1, b"old1")  # a retry now is a new batch, as from an unknown producer
    assert not again.duplicate and again.base_offset == 3
    assert produce(log, 1000, b"any sequence", pid=PID + 2).base_offset == 4  # (an unknown one, for comparison)
    assert produce(log, 0, b"young", pid=PID + 1).duplicate  # the younger producer is kept
    with pytest.raises(OutOfOrderSequence):
        produce(log, 5, b"gap", pid=PID + 1)


def test_expiry_window_comes_from_the_config():
    clock = Clock(T0)
    log = open_log(FaultyFileSystem(), LogConfig(producer_id_expiration_ms=1000), clock=clock)
    produce(log, 0, b"a")
    log.apply_retention(T0 + 1000)
    assert produce(log, 0, b"a").duplicate
    log.apply_retention(T0 + 1001)
    assert not produce(log, 0, b"a").duplicate


def test_snapshot_round_trip_keeps_timestamps():
    fs = FaultyFileSystem()
    clock = Clock(T0)
    log = open_log(fs, clock=clock)
    produce(log, 0, b"a")
    clock.now = T0 + 5
    produce(log, 0, b"b", pid=PID + 1)
    produce(log, 1, b"c", pid=PID + 1)
    log.checkpoint()
    data = fs.read_file(f"{DIR}/{3:020d}.snapshot")
    assert struct.unpack_from(">4sH", data) == (b"KLPS", 4)
    offset, table = ProducerStateTable.decode(data)
    assert offset == 3
    assert {pid: e.last_timestamp for pid, e in table.producers.items()} == {PID: T0, PID + 1: T0 + 5}
    assert table.encode(3) == data
    # A clean reopen reads only the snapshot; its timestamps still decide expiry.
    log.close()
    log = open_log(fs, clock=clock)
    log.apply_retention(T0 + DAY + 1)
    assert not produce(log, 0, b"a").duplicate
    assert produce(log, 1, b"c", pid=PID + 1).duplicate


def v1_snapshot(offset: int, producers) -> bytes:
    """producers: (pid, epoch, [(first seq, last seq, base offset, last offset)])"""
    body = b"".join(struct.pack(">qhH", pid, epoch, len(batches)) + b"".join(struct.pack(">iiqq", *b) for b in batches)
                    for pid, epoch, batches in producers)
    return struct.pack(">4sHHqiI", b"KLPS", 1, 0, offset, len(producers), crc32c(body)) + body


def test_v1_snapshot_still_loads_and_its_producers_expire_a_window_after_loading():
    _, table = ProducerStateTable.decode(v1_snapshot(1, [(PID, 0, [(0, 0, 0, 0)])]), now_ms=77)
    assert table.producers[PID].last_timestamp == 77
    fs = FaultyFileSystem()
    log = open_log(fs, clock=Clock(T0))
    produce(log, 0, b"a")
    produce(log, 1, b"b")
    log.close()
    # As an older kafkalite left it: a clean shutdown with a version 1 snapshot at the log end (nothing replayed).
    fs.write_file_atomic(f"{DIR}/{2:020d}.snapshot", v1_snapshot(2, [(PID, 0, [(0, 0, 0, 0), (1, 1, 1, 1)])]))
    loaded = T0 + 3 * DAY
    log = open_log(fs, clock=Clock(loaded))
    assert log.recovery.clean
    assert produce(log, 1, b"b").duplicate  # loaded from the v1 snapshot
    with pytest.raises(OutOfOrderSequence):
        produce(log, 9, b"gap")
    log.apply_retention(loaded + DAY)  # unknown timestamp counts as the load time
    assert produce(log, 1, b"b").duplicate
    log.apply_retention(loaded + DAY + 1)
    assert produce(log, 9, b"any").base_offset == 2
    log.checkpoint()
    assert newest_snapshot(fs)[1].producers[PID].last_timestamp == loaded  # rewritten as version 2


@pytest.mark.parametrize("restart", ["checkpoint_then_kill", "clean_close", "kill_before_checkpoint"])
def test_expired_producers_do_not_come_back_after_a_restart(restart):
    fs = FaultyFileSystem()
    clock = Clock(T0)
    log = open_log(fs, clock=clock)
    for i in range(3):
        produce(log, i, b"old%d" % i)
    log.checkpoint()  # a snapshot that still holds PID
    clock.now = T0 + DAY
    produce(log, 0, b"young", pid=PID + 1)
    log.checkpoint()
    now = clock.now = T0 + DAY + 1
    if restart != "kill_before_checkpoint":
        log.apply_retention(now)  # forgets PID; the snapshot at the log end still has it until rewritten
        if restart == "clean_close":
            log.close()
        else:
            log.checkpoint()
            produce(log, 1, b"young1", pid=PID + 1, ts=now)  # a tail replayed after the snapshot
            fs.restart(lose_unsynced="none")
        assert PID not in newest_snapshot(fs)[1].producers
    else:
        produce(log, 1, b"young1", pid=PID + 1, ts=now)  # replayed after the snapshot on load
        fs.restart(lose_unsynced="none")  # the newest snapshot still holds PID: expired again on load
    log = open_log(fs, clock=clock)
    end = log.log_end_offset
    assert produce(log, 17, b"any sequence").base_offset == end  # PID is unknown: any sequence is accepted
    assert produce(log, 0, b"young", pid=PID + 1).duplicate  # the young producer survived, deduplicated
    if restart != "clean_close":
        assert produce(log, 1, b"young1", pid=PID + 1).duplicate  # rebuilt by replay after the snapshot


def test_replayed_batches_count_as_appended_at_load_time_whatever_their_timestamps():
    fs = FaultyFileSystem()
    clock = Clock(T0 + DAY)
    # Any timestamp is accepted (Kafka 4 refuses ones more than an hour ahead by default).
    config = LogConfig.from_configs({"message.timestamp.after.max.ms": str(2**63 - 1)})
    log = open_log(fs, config, clock=clock)
    log.append(batch(b"old", pid=PID, epoch=0, seq=0, ts=T0 - 1))  # producer clock more than a window behind
    log.append(batch(b"future", pid=PID + 1, epoch=0, seq=0, ts=T0 + 10 * DAY))
    fs.restart(lose_unsynced="none")  # no snapshot: rebuilt from the batch headers
    log = open_log(fs, config, clock=clock)
    # A retry after the crash is deduplicated even for the producer whose timestamps are old.
    assert produce(log, 0, b"old").duplicate
    assert produce(log, 0, b"future", pid=PID + 1).duplicate
    log.apply_retention(T0 + 2 * DAY)  # exactly one window after the load: kept
    assert produce(log, 0, b"old").duplicate
    log.apply_retention(T0 + 2 * DAY + 1)  # then both expire, a window after the load
    assert not produce(log, 0, b"old").duplicate
    assert not produce(log, 0, b"future", pid=PID + 1).duplicate


def test_the_first_unstable_offset_follows_transactions_opened_ended_and_reloaded():
    def header(pid: int, offset: int, transactional: bool = True, epoch: int = 0):
        return SimpleNamespace(producer_id=pid, producer_epoch=epoch, base_offset=offset, last_offset=offset,
                               base_sequence=offset, attributes=TRANSACTIONAL_BIT if transactional else 0)

    table = ProducerStateTable()
    table.update(header(1, 0, transactional=False), T0)
    assert table.first_unstable_offset() is None
    table.update(header(2, 1), T0)
    table.update(header(3, 2), T0)
    table.update(header(2, 3), T0)  # the same transaction goes on: it still starts at 1
    assert table.first_unstable_offset() == 1
    assert table.end_transaction(header(2, 4), T0) == 1
    assert table.first_unstable_offset() == 2
    table.update(header(3, 5, epoch=1), T0)  # a new epoch of an open transaction's producer keeps it open
    assert table.first_unstable_offset() == 2
    _, reloaded = ProducerStateTable.decode(table.encode(6))
    assert reloaded.first_unstable_offset() == 2
    reloaded.end_transaction(header(3, 6, epoch=1), T0)
    assert reloaded.first_unstable_offset() is None
    table.clear()
    assert table.first_unstable_offset() is None
