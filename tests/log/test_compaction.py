"""Compaction keeps the newest record per key, keeps offsets, drops old tombstones, survives crashes."""

import pytest

from kafkalite.log import FaultyFileSystem, LogConfig, SimulatedCrash

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
    closed_end = log._segments[-1].base_offset
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
    log.compact(now_ms=10_000)  # now the tombstone is old enough to go
    assert [(o, k) for o, k, v in records(log) if v is None] == []
    for offset in range(log.log_start_offset, log.log_end_offset):  # every offset still readable
        assert log.read(offset, 1)
    log.close()
    log = open_log(fs, CONFIG)
    assert log.recovery.clean and records(log) == [r for r in after if r[2] is not None]


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


def test_crash_at_every_step_of_compaction_loses_nothing():
    reference = open_log(FaultyFileSystem(), CONFIG)
    fill(reference)
    before = records(reference)
    reference.checkpoint()
    reference.compact(now_ms=1500)
    compacted = records(reference)
    step = 0
    while True:
        fs = FaultyFileSystem()
        log = open_log(fs, CONFIG)
        fill(log)
        log.checkpoint()
        fs.crash_after(step, torn=True)
        try:
            log.compact(now_ms=1500)
            finished = True
        except SimulatedCrash:
            finished = False
        fs.restart()
        log = open_log(fs, CONFIG)
        got = records(log)
        # Each segment is either old or compacted: the newest value of every key is there, offsets unchanged.
        assert set(compacted) <= set(got) <= set(before), step
        assert dict((k, v) for _, k, v in got) == dict((k, v) for _, k, v in before)
        if finished:
            break
        step += 1
    assert step > 10
