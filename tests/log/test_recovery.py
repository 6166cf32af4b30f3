"""R2 and R3 at unit level: crashes at every step, lost unsynced data, torn tails, bit flips, lost indexes."""

import errno

import pytest

from kafkalite.log import LogConfig, StorageError
from kafkalite.log.fs_faulty import FaultyFileSystem, SimulatedCrash
from kafkalite.log.checkpoint import PARTITION_CHECKPOINT_FILE as CHECKPOINT_FILE

from logstore_helpers import DIR, batch, open_log, read_all, values

CONFIG = LogConfig(segment_bytes=400, index_interval_bytes=150)
SEG0 = DIR + "/00000000000000000000"


def workload(log, appended, flushed):
    """Appends with a flush after every third; records what was acknowledged and what was fsynced."""
    for i in range(12):
        value = b"value-%02d" % i
        log.append(batch(value, b"second-%02d" % i))
        appended.append(value)
        if i % 3 == 2:
            flushed[0] = log.flush()
        if i == 7:
            log.checkpoint()


def check_recovered(fs, appended, flushed_offset, mode):
    log = open_log(fs, CONFIG)
    got = [b for b in read_all(log)]
    assert [b.base_offset for b in got] == list(range(0, 2 * len(got), 2)), "offsets must stay dense"
    firsts = [next(b.records()).value for b in got]
    assert firsts == appended[: len(firsts)] or firsts == appended[: len(firsts) - 1] + firsts[-1:]
    assert log.log_end_offset >= flushed_offset, "fsynced data was lost"
    if mode == "none":
        assert len(firsts) >= len(appended), "a process crash lost acknowledged (written) data"
    assert firsts[: len(appended)] == appended[: len(firsts)]
    # The recovered log takes new appends and survives another power cut once flushed.
    log.append(batch(b"after"))
    log.flush()
    fs.restart()
    assert values(open_log(fs, CONFIG))[-1] == b"after"


def count_ops():
    fs = FaultyFileSystem()
    log = open_log(fs, CONFIG)
    before = fs.mutating_ops
    workload(log, [], [0])
    return fs.mutating_ops - before


@pytest.mark.parametrize("mode", ["all", "some", "none"])
def test_crash_at_every_step_of_appends_flushes_rolls_and_checkpoints(mode):
    total = count_ops()
    assert total > 40
    for step in range(total + 1):
        fs = FaultyFileSystem(seed=step)
        log = open_log(fs, CONFIG)
        appended, flushed = [], [0]
        fs.crash_after(step, torn=step % 2 == 0)
        try:
            workload(log, appended, flushed)
        except SimulatedCrash:
            pass
        fs.restart(lose_unsynced=mode)
        check_recovered(fs, appended, flushed[0], mode)


def test_crash_at_every_step_of_recovery_itself_never_loops():
    base = FaultyFileSystem()
    log = open_log(base, CONFIG)
    appended = []
    workload(log, appended, [0])
    base.restart(lose_unsynced="none")
    step = 0
    while True:
        fs = base.clone()
        fs.crash_after(step)
        try:
            open_log(fs, CONFIG)
            finished = True
        except SimulatedCrash:
            finished = False
        fs.restart(lose_unsynced="all")
        assert values(open_log(fs, CONFIG))[::2] == appended
        if finished:
            break
        step += 1
    assert step > 5


def populated(fs):
    log = open_log(fs, CONFIG)
    for i in range(12):
        log.append(batch(b"v%02d" % i))
    log.flush()
    return log


@pytest.mark.parametrize("cut", [1, 12, 30, 60])
def test_torn_tail_is_truncated_at_the_last_whole_batch(cut):
    fs = FaultyFileSystem()
    log = populated(fs)
    last = log.segments[-1]
    path, size = last.path(".log"), last.size
    fs.restart(lose_unsynced="none")
    f = fs.open(path)
    f.truncate(size - cut)
    log = open_log(fs, CONFIG)
    assert values(log) == [b"v%02d" % i for i in range(11)]
    assert log.recovery.truncated_bytes > 0 and not log.recovery.clean


def test_bit_flips_anywhere_in_the_last_batch_truncate_only_that_batch():
    fs0 = FaultyFileSystem()
    log = populated(fs0)
    last = log.segments[-1]
    path, size = last.path(".log"), last.size
    batch_len = len(log.read(11, 1)[0])
    fs0.restart(lose_unsynced="none")
    for byte in range(size - batch_len, size):
        for bit in (0, 7):
            fs = fs0.clone()
            fs.flip_bit(path, byte, bit)
            if byte - (size - batch_len) in range(12, 16):  # partitionLeaderEpoch: not covered, not checked
                continue
            got = values(open_log(fs, CONFIG))
            assert got == [b"v%02d" % i for i in range(11)], (byte, bit)


def test_bit_flip_in_an_earlier_batch_of_the_tail_cuts_there_and_keeps_offsets_dense():
    fs = FaultyFileSystem()
    log = populated(fs)
    seg = log.segments[-1]
    path = seg.path(".log")
    fs.restart(lose_unsynced="none")
    fs.flip_bit(path, 40, 3)  # inside the segment's first batch
    log = open_log(fs, CONFIG)
    assert log.log_end_offset == seg.base_offset
    assert log.append(batch(b"next")).base_offset == seg.base_offset


@pytest.mark.parametrize("damage", ["delete", "garbage", "truncate", "zeros"])
@pytest.mark.parametrize("clean", [True, False])
def test_missing_or_damaged_indexes_are_rebuilt(damage, clean):
    fs = FaultyFileSystem()
    log = populated(fs)
    expected = [b.base_offset for b in read_all(log)]
    stamp = log.offset_for_timestamp(0)
    if clean:
        log.close()
    else:
        log.checkpoint()
        fs.restart(lose_unsynced="none")
    for suffix in (".index", ".timeindex"):
        path = SEG0 + suffix
        if damage == "delete":
            fs.remove(path)
        else:
            f = fs.open(path)
            size = f.size()
            if damage == "garbage":
                f.pwrite(bytes(range(7, 7 + size)), 0)
            elif damage == "truncate":
                f.truncate(size - 3)
            else:
                f.pwrite(bytes(size), 0)
    log = open_log(fs, CONFIG)
    assert [b.base_offset for b in read_all(log)] == expected
    assert [next(iter([b.base_offset for b in read_all(log, o)])) for o in range(12)] == list(range(12))
    assert log.offset_for_timestamp(0) == stamp
    assert len(log.segments[0].index_offsets) > 0


def test_clean_start_reads_no_log_data():
    fs = FaultyFileSystem()
    log = populated(fs)
    log.close()
    fs.fail("read", path_contains=".log", count=None)  # any read of segment data would now fail
    log = open_log(fs, CONFIG)
    assert log.recovery.clean and log.recovery.segments_scanned == 0
    assert log.log_end_offset == 12
    fs.clear_faults()
    assert values(log) == [b"v%02d" % i for i in range(12)]


def test_unclean_start_validates_only_after_the_recovery_point():
    fs = FaultyFileSystem()
    log = open_log(fs, CONFIG)
    for i in range(40):
        log.append(batch(b"v%02d" % i))
    log.checkpoint()
    for i in range(40, 44):
        log.append(batch(b"v%02d" % i))
    fs.restart(lose_unsynced="none")
    log = open_log(fs, CONFIG)
    assert not log.recovery.clean and log.recovery.segments_scanned == 1
    assert log.log_end_offset == 44


def test_damaged_checkpoint_means_full_validation():
    fs = FaultyFileSystem()
    log = populated(fs)
    log.close()
    fs.flip_bit(DIR + "/" + CHECKPOINT_FILE, 10)
    log = open_log(fs, CONFIG)
    assert not log.recovery.clean and log.recovery.segments_scanned == log.segment_count
    assert log.log_end_offset == 12


def test_clean_marker_is_not_trusted_if_the_active_segment_changed():
    fs = FaultyFileSystem()
    log = populated(fs)
    path = log.segments[-1].path(".log")
    log.close()
    f = fs.open(path)
    f.pwrite(b"\x00" * 30, f.size())  # junk appended after the clean shutdown
    log = open_log(fs, CONFIG)
    assert not log.recovery.clean and log.log_end_offset == 12


def test_crash_during_segment_roll_leaves_dense_offsets():
    for step in range(8):
        fs = FaultyFileSystem()
        log = open_log(fs, CONFIG)
        log.append(batch(b"x" * 300))
        log.flush()
        fs.crash_after(step)
        try:
            log.append(batch(b"y" * 300))  # rolls: seal time index, create three files, write
            log.flush()
        except SimulatedCrash:
            pass
        fs.restart()
        log = open_log(fs, CONFIG)
        assert [b.base_offset for b in read_all(log)] in ([0], [0, 1])
        assert log.append(batch(b"z")).base_offset == log.log_end_offset - 1


@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC])
def test_write_errors_raise_storage_error_and_store_nothing(code):
    fs = FaultyFileSystem()
    log = open_log(fs, CONFIG)
    log.append(batch(b"before"))
    fs.fail("write", code, torn=True)
    with pytest.raises(StorageError):
        log.append(batch(b"failed"))
    assert log.log_end_offset == 1 and not log.failed
    fs.fail("write", code, path_contains=".index")
    with pytest.raises(StorageError):
        log.append(batch(b"x" * 300))  # rolls, so it needs an index entry: that write fails, all is undone
    log.append(batch(b"after"))
    assert values(log) == [b"before", b"after"] and not log.failed
    log.flush()
    fs.restart()
    assert values(open_log(fs, CONFIG)) == [b"before", b"after"]


def test_fsync_error_takes_the_log_offline_until_reopened():
    fs = FaultyFileSystem()
    log = open_log(fs, CONFIG)
    log.append(batch(b"a"))
    fs.fail("fsync", errno.EIO)
    with pytest.raises(StorageError):
        log.flush()
    assert log.failed
    with pytest.raises(StorageError):
        log.append(batch(b"b"))
    assert values(log) == [b"a"]  # reads still work
    fs.restart(lose_unsynced="none")
    log = open_log(fs, CONFIG)
    assert not log.failed and log.append(batch(b"b")).base_offset == 1


def test_read_only_disk_serves_reads_but_fails_writes_with_storage_error():
    fs = FaultyFileSystem()
    populated(fs).close()
    fs.fail("write", errno.EROFS, count=None)
    log = open_log(fs, CONFIG)  # a clean open writes nothing
    assert values(log)[-1] == b"v11"
    with pytest.raises(StorageError):
        log.append(batch(b"refused"))
    fs.clear_faults()
    log = open_log(fs, CONFIG)
    assert log.append(batch(b"accepted")).base_offset == 12


def test_unclean_open_on_a_failing_disk_is_a_storage_error():
    fs = FaultyFileSystem()
    populated(fs)
    fs.restart(lose_unsynced="none")
    fs.fail("write", errno.EIO, count=None)
    with pytest.raises(StorageError):
        open_log(fs, CONFIG)
    fs.clear_faults()
    assert open_log(fs, CONFIG).log_end_offset == 12
