"""Compaction keeps the newest record per key, keeps offsets, drops old tombstones, survives crashes."""

import pytest

from kafkalite.log import LogConfig, compaction
from kafkalite.log.fs_faulty import FaultyFileSystem, SimulatedCrash

from logstore_helpers import batch, open_log, read_all

CONFIG = LogConfig(cleanup_policy="compact", segment_bytes=350, delete_retention_ms=1000)


def records(log):
    return [(r.offset, r.key, r.value) for b in read_all(log) for r in b.records()]


def fill(log):
    """Keys k0..k3 overwritten many times, a tombstone for k1, an unkeyed record, multi-record batches."""
    for i in range(12):
        log.append(batch(b"v%d" % i, b"w%d" % i, keys=[b"k%d" % (i % 4), b"k%d" % ((i + 1) % 4)], ts=1000 + i))
    log.append(batch(None, key=b"k1", ts=1100))
    log.append(batch(b"nokey", key=None, ts=1101))
    for i in range(6):
        log.append(batch(b"tail%d" % i, key=b"t%d" % i, ts=1200 + i))


def expected_after(before, log):
    closed_end = log.segments[-1].base_offset
    newest = {}
    for offset, key, value in before:
        if offset < closed_end and key is not None:
            newest[key] = offset
    return [(o, k, v) for o, k, v in before
            if o >= closed_end or k is None or newest[k] == o]


def test_compaction_keeps_newest_per_key_and_original_offsets():
    fs = FaultyFileSystem()
    log = open_log(fs, CONFIG)
    fill(log)
    before = records(log)
    log.checkpoint()
    assert log.compact(now_ms=1500) > 0
    after = records(log)
    assert after == expected_after(before, log)
    assert (None in [v for _, _, v in after])  # tombstone still younger than delete.retention.ms
    assert all(b.crc_ok() for b in read_all(log))
    # The tombstone is old enough to go now, but as in Kafka it goes in the next round, which waits for dirt.
    assert log.compact(now_ms=10_000) == 0
    more(log, 8)
    log.checkpoint()
    assert log.compact(now_ms=10_000) > 0
    assert [(o, k) for o, k, v in records(log) if v is None] == []
    for offset in range(log.log_start_offset, log.log_end_offset):  # every offset still readable
        assert log.read(offset, 1)
    final = records(log)
    log.close()
    log = open_log(fs, CONFIG)
    assert log.recovery.clean and records(log) == final


def more(log, count, ts=2000):
    """`count` batches of new keys: dirty data for the next round."""
    for i in range(count):
        log.append(batch(b"m%d" % i, key=b"m%d" % i, ts=ts + i))


def dirty_fraction(log):
    """Dirty bytes / compactable bytes, from the segment sizes (every closed segment is compactable here)."""
    closed = log.segments[:-1]
    dirty = sum(seg.size for seg in closed if seg.next_offset > log.cleaner_point)
    return dirty / sum(seg.size for seg in closed), dirty


def test_a_round_needs_dirty_data_above_the_ratio():
    config = LogConfig(cleanup_policy="compact", segment_bytes=350, min_cleanable_dirty_ratio=0.9)
    log = open_log(FaultyFileSystem(), config)
    fill(log)
    log.checkpoint()
    assert log.compact(now_ms=1500) > 0  # the first round: everything is dirty
    point = log.cleaner_point
    assert point == log.segments[-1].base_offset
    skipped_with_dirt = 0
    for i in range(300):  # add dirty data batch by batch until a round runs
        log.append(batch(b"m%d" % i, key=b"m%d" % i, ts=2000))
        log.checkpoint()
        fraction, dirty = dirty_fraction(log)
        log.compact(now_ms=2000)
        if log.cleaner_point != point:
            assert fraction > 0.9
            break
        assert fraction <= 0.9
        skipped_with_dirt += dirty > 0
    else:
        raise AssertionError("no round ran")
    assert skipped_with_dirt > 0  # rounds were held back while the dirty fraction was at or below 0.9


def test_max_compaction_lag_forces_a_round_below_the_ratio():
    config = LogConfig(cleanup_policy="compact", segment_bytes=350, min_cleanable_dirty_ratio=0.99,
                       max_compaction_lag_ms=5000)
    log = open_log(FaultyFileSystem(), config)
    fill(log)
    log.checkpoint()
    log.compact(now_ms=1500)
    point = log.cleaner_point
    more(log, 3, ts=3000)
    log.checkpoint()
    assert dirty_fraction(log)[0] < 0.99
    oldest_dirty = next(seg for seg in log.segments if seg.next_offset > point)
    since = next(oldest_dirty.headers(0)).max_timestamp  # its first batch's max timestamp, as in Kafka
    assert log.compact(now_ms=since + 5000) == 0  # exactly max.compaction.lag.ms old: not yet
    log.compact(now_ms=since + 5001)
    assert log.cleaner_point > point


def test_the_cleaner_point_survives_a_restart_and_a_damaged_one_means_all_dirty():
    fs = FaultyFileSystem()
    log = open_log(fs, CONFIG)
    fill(log)
    log.checkpoint()
    log.compact(now_ms=1500)
    point = log.cleaner_point
    log.close()
    log = open_log(fs, CONFIG)
    assert log.cleaner_point == point and log.compact(now_ms=1500) == 0
    log.close()
    fs.flip_bit("/data/topic-0/cleaner.checkpoint", 3)
    log = open_log(fs, CONFIG)
    assert log.cleaner_point == 0


def test_compaction_needs_the_recovery_point_and_the_lag():
    log = open_log(FaultyFileSystem(), CONFIG)
    fill(log)
    assert log.compact(now_ms=1500) == 0  # nothing below the recovery point yet
    log.checkpoint()
    lagging = open_log(FaultyFileSystem(), LogConfig(cleanup_policy="compact", segment_bytes=350,
                                                    min_compaction_lag_ms=10**9))
    fill(lagging)
    lagging.checkpoint()
    assert lagging.compact(now_ms=1500) == 0
    assert open_log(FaultyFileSystem(), LogConfig(segment_bytes=350)).compact(0) == 0  # policy delete


def crash_at_every_step(prepare, now_ms: int) -> int:
    """Crash a compaction round after each file-system step in turn (on a log set up by prepare); every time, the
    reopened log holds each segment either as before the round or as after it. Returns the steps taken."""
    reference = open_log(FaultyFileSystem(), CONFIG)
    prepare(reference)
    before = records(reference)
    reference.compact(now_ms=now_ms)
    compacted = records(reference)
    step = 0
    while True:
        fs = FaultyFileSystem()
        log = open_log(fs, CONFIG)
        prepare(log)
        fs.crash_after(step, torn=True)
        try:
            log.compact(now_ms=now_ms)
            finished = True
        except SimulatedCrash:
            finished = False
        fs.restart()
        log = open_log(fs, CONFIG)
        got = records(log)
        # Each segment is either old or compacted: the newest value of every key is there, offsets unchanged.
        assert set(compacted) <= set(got) <= set(before), step
        assert live(got) == live(before)
        assert [o for o, _, _ in got] == sorted(o for o, _, _ in got)
        if finished:
            return step
        step += 1


def test_crash_at_every_step_of_compaction_loses_nothing():
    def prepare(log):
        fill(log)
        log.checkpoint()

    assert crash_at_every_step(prepare, now_ms=1500) > 10


def live(rows):
    """Each key's newest value, keys whose newest record is a tombstone left out (it may be gone by now)."""
    newest = dict((k, v) for _, k, v in rows)
    return {k: v for k, v in newest.items() if v is not None}


def merge_round(log):
    """A first round leaves compacted segments; more dirt follows for a second round to merge with them."""
    fill(log)
    log.checkpoint()
    log.compact(now_ms=1500)
    more(log, 8)
    log.checkpoint()


def test_a_round_merges_the_segments_it_shrinks():
    fs = FaultyFileSystem()
    log = open_log(fs, CONFIG)
    fill(log)
    log.checkpoint()
    before = records(log)
    segments_before = log.segment_count
    log.compact(now_ms=1500)
    assert log.segment_count < segments_before
    assert all(seg.size <= CONFIG.segment_bytes for seg in log.segments)
    after = records(log)
    assert after == expected_after(before, log)
    for offset in range(log.log_start_offset, log.log_end_offset):  # every offset still readable
        assert log.read(offset, 1)
    log.close()
    log = open_log(fs, CONFIG)
    assert records(log) == after and log.segment_count < segments_before


def test_crash_at_every_step_of_a_merging_round_loses_nothing():
    assert crash_at_every_step(merge_round, now_ms=3000) > 10


def test_a_swap_named_by_an_older_version_is_completed_on_open():
    fs = FaultyFileSystem()
    log = open_log(fs, CONFIG)
    fill(log)
    before = records(log)
    log.close()
    # An interrupted one-segment swap as older versions named it: <base>.log.swap, its indexes still there.
    first = "/data/topic-0/" + "0" * 20
    swap = fs.open(first + ".log.swap", create=True)
    swap.pwrite(fs.read_file(first + ".log"), 0)
    swap.fsync()
    swap.close()
    log = open_log(fs, CONFIG)
    assert not [n for n in fs.listdir("/data/topic-0") if n.endswith(".swap")]
    assert records(log) == before


class OnlyThePublicInterface:
    """A partition log seen through compaction.CompactableLog and nothing else: a private attribute fails."""

    def __init__(self, log):
        self._log = log
        self.fs, self.config = log.fs, log.config

    segments = property(lambda self: self._log.segments)
    recovery_point = property(lambda self: self._log.recovery_point)
    log_start_offset = property(lambda self: self._log.log_start_offset)
    cleaner_point = property(lambda self: self._log.cleaner_point)
    high_watermark = property(lambda self: self._log.high_watermark)

    def first_unstable_offset(self):
        return self._log.first_unstable_offset()

    def aborted_transactions(self, start, end):
        return self._log.aborted_transactions(start, end)

    def producer_last_offsets(self):
        return self._log.producer_last_offsets()

    def replace_segments(self, old, cleaned):
        return self._log.replace_segments(old, cleaned)

    def replace_aborted_transactions(self, below, entries):
        return self._log.replace_aborted_transactions(below, entries)


def test_compaction_needs_only_the_logs_public_interface():
    log = open_log(FaultyFileSystem(), CONFIG)
    fill(log)
    log.checkpoint()
    before, segments_before = records(log), log.segments
    done = compaction.compact(OnlyThePublicInterface(log), now_ms=1500)
    assert done.rewritten > 0 and done.cleaner_point == log.segments[-1].base_offset
    assert records(log) == expected_after(before, log)
    assert log.cleaner_point == 0  # the round only reports the point; PartitionLog.compact saves it
    assert segments_before != log.segments and isinstance(log.segments, tuple)


def test_segments_is_a_snapshot():
    log = open_log(FaultyFileSystem(), CONFIG)
    fill(log)
    snapshot = log.segments
    log.roll()
    assert len(log.segments) == len(snapshot) + 1 and log.segments[:-1] == snapshot
    with pytest.raises(TypeError):
        snapshot[0] = snapshot[1]


def test_replace_segments_refuses_segments_that_are_gone_and_removes_the_cleaned_file():
    fs = FaultyFileSystem()
    log = open_log(fs, CONFIG)
    fill(log)
    log.checkpoint()
    first, second = log.segments[:2]
    cleaned = first.path(".log.cleaned")
    fs.open(cleaned, create=True).close()
    log.delete_records(second.base_offset)  # `first` is deleted meanwhile
    before = records(log)
    assert log.replace_segments([first, second], cleaned) is False
    assert not fs.exists(cleaned) and records(log) == before
    for old in ([second, log.segments[2]], [log.segments[-1]]):  # not adjacent; the active segment
        fs.open(cleaned, create=True).close()
        assert log.replace_segments(old, cleaned) is False and not fs.exists(cleaned)
    assert records(log) == before


def test_replace_segments_merges_closed_segments_and_retires_the_old_ones():
    fs = FaultyFileSystem()
    log = open_log(fs, CONFIG)
    fill(log)
    log.checkpoint()
    before = records(log)
    old = log.segments[:3]
    cleaned = old[0].path(".log.cleaned")
    f = fs.open(cleaned, create=True)
    f.pwrite(b"".join(fs.read_file(seg.path(".log")) for seg in old), 0)  # the same batches, in one file
    f.fsync()
    f.close()
    assert log.replace_segments(old, cleaned) is True
    assert log.segments[0].base_offset == old[0].base_offset and log.segments[1] is not old[1]
    assert log.segments[0].next_offset == old[-1].next_offset and records(log) == before
    assert all(not seg.closed for seg in old)  # retired: a concurrent read may still use them
    log.close_retired()
    assert all(seg.closed for seg in old)
    log.close()
    assert records(open_log(fs, CONFIG)) == before
