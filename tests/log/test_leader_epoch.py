"""The leader-epoch checkpoint: Kafka's file and rules, kept true through appends, truncation, log-start moves,
crashes and follower appends."""

import pytest

from kafkalite.log import CorruptRecord, LogConfig, OffsetOutOfRange
from kafkalite.log.checkpoint import decode_leader_epochs, encode_leader_epochs
from kafkalite.log.errors import UnexpectedAppendOffset
from kafkalite.log.fs_faulty import FaultyFileSystem, SimulatedCrash
from kafkalite.log.leader_epoch import LeaderEpochCache
from kafkalite.protocol.record_batch import iter_batches

from logstore_helpers import DIR, batch, open_log, read_all

FILE = DIR + "/leader-epoch-checkpoint"


def cache_with(fs, *entries):
    fs.makedirs(DIR)
    cache = LeaderEpochCache(fs, DIR)
    for epoch, start in entries:
        assert cache.assign(epoch, start)
    return cache


# -- the cache ------------------------------------------------------------------------------------------------

def test_the_file_is_kafkas_text_layout_and_written_on_every_change():
    fs = FaultyFileSystem()
    cache = cache_with(fs, (0, 0), (2, 10))
    assert fs.read_file(FILE) == b"0\n2\n0 0\n2 10\n"
    fs.restart()  # a power cut: the file was written durably (temp file, fsync, rename, directory fsync)
    assert fs.read_file(FILE) == b"0\n2\n0 0\n2 10\n"
    cache.truncate_from_end(10)
    assert fs.read_file(FILE) == b"0\n1\n0 0\n"
    assert decode_leader_epochs(encode_leader_epochs([(3, 7), (9, 100)])) == [(3, 7), (9, 100)]


@pytest.mark.parametrize("damaged", [
    b"", b"0\n", b"1\n1\n0 0\n", b"0\n2\n0 0\n", b"0\n1\n0 0", b"0\n1\nx 0\n", b"0\n2\n3 5\n2 9\n",
    b"0\n2\n3 5\n4 5\n", b"0\n1\n-1 0\n", b"\xff\n",
])
def test_a_damaged_file_does_not_decode(damaged):
    assert decode_leader_epochs(damaged) is None


def test_assign_ignores_epochs_that_are_not_newer_and_drops_entries_past_a_lower_start():
    fs = FaultyFileSystem()
    cache = cache_with(fs, (1, 0), (3, 10), (5, 20))
    assert not cache.assign(5, 30) and not cache.assign(4, 25) and not cache.assign(0, 40)
    assert cache.latest_epoch == 5 and cache.entries == ((1, 0), (3, 10), (5, 20))
    assert cache.assign(6, 15)  # a newer epoch starting below the last start: those offsets are gone
    assert cache.entries == ((1, 0), (3, 10), (6, 15))
    with pytest.raises(ValueError):
        cache.assign(7, -1)
    assert LeaderEpochCache(fs, DIR).latest_epoch == -1


def test_end_offset_for_follows_offset_for_leader_epoch():
    cache = cache_with(FaultyFileSystem(), (1, 5), (3, 10), (5, 20))
    log_end = 27
    assert cache.end_offset_for(5, log_end) == (5, 27)  # the latest epoch ends at the log end
    assert cache.end_offset_for(3, log_end) == (3, 20)  # an older one where the next higher one starts
    assert cache.end_offset_for(4, log_end) == (3, 20)  # unknown in between: the largest epoch <= it
    assert cache.end_offset_for(2, log_end) == (1, 10)
    assert cache.end_offset_for(0, log_end) == (0, 5)  # older than all (Kafka): the first known start
    assert cache.end_offset_for(6, log_end) == (-1, -1)  # newer than any
    assert cache.end_offset_for(-1, log_end) == (-1, -1)  # undefined
    assert LeaderEpochCache(FaultyFileSystem(), DIR).end_offset_for(0, 10) == (-1, -1)  # no epochs at all


def test_truncation_from_either_end():
    fs = FaultyFileSystem()
    cache = cache_with(fs, (1, 0), (3, 10), (5, 20))
    cache.truncate_from_start(12)  # the epoch holding the new log start now starts there
    assert cache.entries == ((3, 12), (5, 20))
    cache.truncate_from_start(20)
    assert cache.entries == ((5, 20),)
    cache.truncate_from_start(3)  # below the first entry: nothing to do
    assert cache.entries == ((5, 20),) and decode_leader_epochs(fs.read_file(FILE)) == [(5, 20)]
    cache = cache_with(FaultyFileSystem(), (1, 0), (3, 10), (5, 20))
    cache.truncate_from_end(21)
    assert cache.entries == ((1, 0), (3, 10), (5, 20))
    cache.truncate_from_end(20)  # epochs starting at or after the new log end go
    assert cache.entries == ((1, 0), (3, 10))
    cache.truncate_from_end(0)
    assert cache.entries == ()


# -- the partition log keeps it ---------------------------------------------------------------------------

def epochs_agree_with_batches(log):
    """Every batch's partitionLeaderEpoch is the epoch the checkpoint says wrote its offset."""
    entries = log.leader_epochs
    for b in read_all(log):
        owner = [epoch for epoch, start in entries if start <= b.base_offset]
        assert owner and owner[-1] == b.partition_leader_epoch, (b.base_offset, entries)


def test_appends_record_each_new_epoch_at_its_first_offset():
    fs = FaultyFileSystem()
    log = open_log(fs)
    for epoch in (0, 0, 3, 3, 3, 5):
        log.append(batch(b"a", b"b"), leader_epoch=epoch)
    assert log.leader_epochs == ((0, 0), (3, 4), (5, 10)) and log.latest_epoch == 5
    assert fs.read_file(FILE) == b"0\n3\n0 0\n3 4\n5 10\n"
    assert log.epoch_end_offset(5) == (5, 12) and log.epoch_end_offset(3) == (3, 10)
    assert log.epoch_end_offset(4) == (3, 10) and log.epoch_end_offset(6) == (-1, -1)
    epochs_agree_with_batches(log)
    log.assign_leader_epoch(7)  # becoming leader: the new epoch starts at the log end
    assert log.leader_epochs[-1] == (7, 12) and log.epoch_end_offset(5) == (5, 12)
    log.close()
    log = open_log(fs)
    # As in Kafka, open truncates the epochs to the log end: one that wrote nothing yet is dropped (the leader
    # assigns it again when it takes over after the restart).
    assert log.recovery.clean and log.leader_epochs == ((0, 0), (3, 4), (5, 10))


def test_truncate_to_and_log_start_moves_keep_it_consistent():
    fs = FaultyFileSystem()
    log = open_log(fs, LogConfig(segment_bytes=200))
    for epoch in (1, 1, 2, 2, 4, 4):
        log.append(batch(b"x" * 30), leader_epoch=epoch)
    assert log.leader_epochs == ((1, 0), (2, 2), (4, 4))
    log.truncate_to(4)
    assert log.leader_epochs == ((1, 0), (2, 2)) and decode_leader_epochs(fs.read_file(FILE)) == [(1, 0), (2, 2)]
    log.append(batch(b"y"), leader_epoch=6)
    assert log.leader_epochs == ((1, 0), (2, 2), (6, 4))
    log.delete_records(3)
    assert log.leader_epochs == ((2, 3), (6, 4))
    epochs_agree_with_batches(log)
    log.close()
    assert open_log(fs, LogConfig(segment_bytes=200)).leader_epochs == ((2, 3), (6, 4))


def test_retention_moving_the_log_start_truncates_it():
    log = open_log(FaultyFileSystem(), LogConfig(segment_bytes=200, retention_bytes=300))
    for epoch in range(8):
        log.append(batch(b"x" * 60), leader_epoch=epoch)
    assert log.apply_retention(now_ms=1000) > 0
    start = log.log_start_offset
    assert start > 0 and log.leader_epochs == tuple((epoch, epoch) for epoch in range(start, 8))
    epochs_agree_with_batches(log)


@pytest.mark.parametrize("damage", ["remove", "garble"])
def test_a_missing_or_damaged_file_is_rebuilt_from_the_batches(damage):
    fs = FaultyFileSystem()
    log = open_log(fs, LogConfig(segment_bytes=200))
    for epoch in (0, 2, 2, 3, 3, 3):
        log.append(batch(b"x" * 40), leader_epoch=epoch)
    log.delete_records(2)
    log.close()
    if damage == "remove":
        fs.remove(FILE)  # e.g. a log written before the file existed
    else:
        f = fs.open(FILE)
        f.pwrite(b"0\n9", 0)
        f.fsync()
        f.close()
    log = open_log(fs, LogConfig(segment_bytes=200))
    assert log.leader_epochs == ((2, 2), (3, 3))
    assert decode_leader_epochs(fs.read_file(FILE)) == [(2, 2), (3, 3)]  # written, so the next open reads it


def test_a_new_partition_writes_no_file():
    fs = FaultyFileSystem()
    log = open_log(fs)
    log.close()
    open_log(fs)
    assert not fs.exists(FILE)


def test_epochs_of_batches_a_power_cut_took_are_forgotten():
    fs = FaultyFileSystem()
    log = open_log(fs)
    log.append(batch(b"a"), leader_epoch=1)
    log.flush()
    log.append(batch(b"b"), leader_epoch=2)  # the epoch is durable at once, the batch only in the OS
    fs.restart()
    log = open_log(fs)
    assert log.log_end_offset == 1 and log.leader_epochs == ((1, 0),) and log.epoch_end_offset(1) == (1, 1)


def test_a_crash_at_any_step_leaves_the_checkpoint_covering_every_batch():
    def run(log):
        for i, epoch in enumerate((0, 0, 1, 1, 3)):
            log.append(batch(b"v%d" % i), leader_epoch=epoch)
            if i % 2:
                log.flush()
        log.truncate_to(3)
        log.append(batch(b"w"), leader_epoch=4)
        log.delete_records(1)
        log.checkpoint()

    step = 0
    while True:
        fs = FaultyFileSystem(seed=step)
        log = open_log(fs)
        fs.crash_after(step, torn=True)
        try:
            run(log)
            finished = True
        except SimulatedCrash:
            finished = False
        fs.restart(lose_unsynced="some")
        log = open_log(fs)
        epochs_agree_with_batches(log)
        assert all(start >= log.log_start_offset and start < log.log_end_offset for _, start in log.leader_epochs)
        if finished:
            assert log.leader_epochs == ((0, 1), (1, 2), (4, 3))
            break
        step += 1
    assert step > 20


# -- follower appends -----------------------------------------------------------------------------------------

def leader_with_epochs():
    leader = open_log(FaultyFileSystem())
    leader.append(batch(b"a", b"b", pid=9, epoch=0, seq=0), leader_epoch=1)
    leader.append(batch(b"c", pid=9, epoch=0, seq=2), leader_epoch=1)
    leader.append(batch(b"d", b"e", b"f", pid=9, epoch=0, seq=3), leader_epoch=4)
    return leader


def fetched(log, offset=0):
    return bytes(b"".join(bytes(chunk) for chunk in log.read(offset, 1 << 20)))


def test_a_follower_stores_the_leaders_batches_byte_for_byte():
    leader = leader_with_epochs()
    follower = open_log(FaultyFileSystem(), path="/follower")
    result = follower.append_as_follower(fetched(leader))
    assert (result.base_offset, result.last_offset) == (0, 5) and follower.log_end_offset == 6
    assert fetched(follower) == fetched(leader)
    assert follower.leader_epochs == leader.leader_epochs == ((1, 0), (4, 3))
    assert follower.epoch_end_offset(1) == leader.epoch_end_offset(1) == (1, 3)
    # Producer state came with the batches: after a failover a producer's retry is still a duplicate.
    retry = follower.append(batch(b"d", b"e", b"f", pid=9, epoch=0, seq=3), leader_epoch=5)
    assert retry.duplicate and retry.base_offset == 3
    assert follower.append(batch(b"g", pid=9, epoch=0, seq=6), leader_epoch=5).base_offset == 6
    assert follower.leader_epochs == ((1, 0), (4, 3), (5, 6))


def test_a_follower_append_must_continue_the_log_and_be_intact():
    leader = leader_with_epochs()
    data = fetched(leader)
    follower = open_log(FaultyFileSystem(), path="/follower")
    first = len(next(iter_batches(data)).buf)
    with pytest.raises(UnexpectedAppendOffset):
        follower.append_as_follower(data[:first] + data[:first])  # the second starts below where the first ended
    damaged = bytearray(data)
    damaged[-1] ^= 1  # the last batch's CRC no longer matches
    with pytest.raises(CorruptRecord):
        follower.append_as_follower(damaged)
    with pytest.raises(CorruptRecord):
        follower.append_as_follower(data[:-1])  # a cut batch
    assert follower.log_end_offset == 0 and follower.leader_epochs == ()  # nothing of a refused call stored
    follower.append_as_follower(data[:first])
    follower.append_as_follower(data[first:])
    assert fetched(follower) == data
    with pytest.raises(OffsetOutOfRange):
        follower.read(7, 100)


def test_truncating_at_the_log_end_drops_an_epoch_that_wrote_nothing(tmp_path):
    """A replica that became leader (recording its epoch at the log end) and lost leadership before writing
    must stop reporting that epoch, or its new leader answers diverging_epoch on every fetch."""
    from kafkalite.log.config import LogConfig
    from kafkalite.log.partition import PartitionLog
    from kafkalite.protocol.record_batch import build_batch

    log = PartitionLog.open(str(tmp_path / "p"), LogConfig())
    log.append(bytearray(build_batch([(None, b"a")])), leader_epoch=0)
    log.assign_leader_epoch(1)
    assert log.latest_epoch == 1
    assert log.truncate_to(log.log_end_offset) == 1
    assert log.latest_epoch == 0 and log.leader_epochs == ((0, 0),)
    log.close()
