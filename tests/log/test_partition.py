"""Append, read, flush, indexes, timestamps, truncation, DeleteRecords, retention."""

import threading

import pytest

from kafkalite.log import CorruptRecord, InvalidTimestamp, LogConfig, OffsetOutOfRange, RecordTooLarge
from kafkalite.log.fs_faulty import FaultyFileSystem
from kafkalite.protocol.record_batch import RecordBatch, iter_batches

from logstore_helpers import DIR, batch, open_log, read_all, values


@pytest.fixture
def fs():
    return FaultyFileSystem()


def test_append_assigns_dense_offsets_and_rewrites_only_offset_and_epoch(fs):
    log = open_log(fs)
    raw = batch(b"a", b"b", b"c")
    original = bytes(raw)
    assert log.append(raw, leader_epoch=7).base_offset == 0
    assert log.append(batch(b"d")).base_offset == 3
    assert log.log_end_offset == log.high_watermark == 4 and log.log_start_offset == 0
    stored = log.read(0, 1)[0]
    first = RecordBatch(memoryview(stored)[: len(original)])
    assert first.base_offset == 0 and first.partition_leader_epoch == 7 and first.crc_ok()
    assert stored[16:len(original)] == original[16:]  # from magic on, byte for byte as received
    assert values(log) == [b"a", b"b", b"c", b"d"]


def test_read_semantics(fs):
    log = open_log(fs)
    for i in range(10):
        log.append(batch(b"v%d" % i, b"w%d" % i))  # offsets 2i, 2i+1
    one = len(log.read(0, 1)[0])
    assert [b.base_offset for b in iter_batches(log.read(5, 1)[0])] == [4]  # the batch holding offset 5
    assert len(list(iter_batches(log.read(4, 3 * one)[0]))) == 3  # whole batches within max_bytes
    assert len(list(iter_batches(log.read(4, 3 * one - 1)[0]))) == 2
    assert len(list(iter_batches(log.read(0, 0)[0]))) == 1  # at least one batch
    assert log.read(20, 100) == []
    with pytest.raises(OffsetOutOfRange):
        log.read(21, 100)
    with pytest.raises(OffsetOutOfRange):
        log.read(-1, 100)


def test_read_stops_before_max_offset(fs):
    log = open_log(fs, LogConfig(segment_bytes=300))
    for i in range(10):
        log.append(batch(b"v%d" % i, b"w%d" % i))  # offsets 2i, 2i+1, several segments
    assert log.segment_count > 2

    def bases(offset, max_offset, max_bytes=1 << 20):
        return [b.base_offset for chunk in log.read(offset, max_bytes, max_offset) for b in iter_batches(chunk)]

    first_segment = [b for b in range(0, 20, 2) if b < log.segments[1].base_offset]
    assert bases(0, None) == bases(0, 20) == bases(0, 1000) == first_segment  # default and beyond: the log end
    assert bases(0, 4) == [0, 2]  # a high watermark on a batch boundary: every batch below it
    assert bases(0, 5) == [0, 2]  # a limit inside a batch: that batch is not returned (Kafka's position cut)
    assert bases(2, 4) == [2] and bases(3, 4) == [2]
    assert bases(4, 4) == [] and bases(5, 4) == [] and bases(18, 4) == []  # at or beyond the limit
    assert bases(4, 5) == []  # the only batch at offset 4 straddles the limit
    assert bases(0, 4, max_bytes=0) == [0]  # at least one batch, if it ends below the limit
    second = log.segments[1].base_offset
    assert bases(second, second) == [] and bases(second, second + 2) == [second]
    with pytest.raises(OffsetOutOfRange):
        log.read(21, 100, max_offset=30)  # still out of range beyond the log end


def test_segments_roll_by_size_and_by_time_and_reads_cross_them(fs):
    now = [0]
    log = open_log(fs, LogConfig(segment_bytes=300, segment_ms=1000, index_interval_bytes=100),
                   clock=lambda: now[0])
    for i in range(20):
        log.append(batch(b"x" * 40))
    assert log.segment_count > 5
    names = fs.listdir(DIR)
    assert "00000000000000000000.log" in names and "00000000000000000000.index" in names
    assert all(len(n.split(".")[0]) == 20 for n in names if n.endswith(".log"))
    assert [b.base_offset for b in read_all(log)] == list(range(20))
    count = log.segment_count
    log.append(batch(b"y"))
    assert log.segment_count == count  # not old yet
    now[0] = 5000
    log.append(batch(b"z"))
    assert log.segment_count == count + 1


def test_read_does_not_read_whole_segments(fs):
    log = open_log(fs, LogConfig(index_interval_bytes=1024))
    for i in range(2000):
        log.append(batch(b"%06d" % i + b"x" * 100))
    reads = []
    original = type(log.segments[0].log).pread

    def spy(self, size, offset):
        reads.append(size)
        return original(self, size, offset)

    type(log.segments[0].log).pread = spy
    try:
        chunks = log.read(1500, 500)
    finally:
        type(log.segments[0].log).pread = original
    assert next(iter_batches(chunks[0])).base_offset == 1500
    assert sum(reads) < 40_000 < log.size_bytes  # index lookup + short header walk, not 240 KB


def test_index_lookup_survives_a_garbage_index(fs):
    log = open_log(fs, LogConfig(index_interval_bytes=200))
    for i in range(100):
        log.append(batch(b"%03d" % i))
    seg = log.segments[0]
    seg.index_positions[5] += 3  # in-memory corruption: a position that is not a batch boundary
    assert next(iter_batches(log.read(60, 1)[0])).base_offset == 60


def test_offset_for_timestamp_and_max_timestamp(fs):
    log = open_log(fs, LogConfig(segment_bytes=400, index_interval_bytes=100))
    for i in range(30):
        log.append(batch(b"a", b"b", ts=1000 + 10 * i))  # both records share the batch timestamp
    assert log.offset_for_timestamp(0) == (0, 1000)
    assert log.offset_for_timestamp(1000) == (0, 1000)
    assert log.offset_for_timestamp(1001) == (2, 1010)
    assert log.offset_for_timestamp(1150) == (30, 1150)
    assert log.offset_for_timestamp(1291) is None
    assert log.max_timestamp_offset() == (58, 1290)
    log.append(batch(b"late", ts=5))
    assert log.max_timestamp_offset() == (58, 1290)
    assert open_log(FaultyFileSystem(), path="/other").max_timestamp_offset() == (-1, -1)


def test_log_append_time_stamps_batch_and_keeps_crc_valid(fs):
    log = open_log(fs, LogConfig(message_timestamp_type="LogAppendTime"), clock=lambda: 424242)
    result = log.append(batch(b"v", ts=1))
    assert result.log_append_time == 424242
    stored = next(iter_batches(log.read(0, 1)[0]))
    assert stored.crc_ok() and stored.log_append_time and stored.max_timestamp == 424242
    assert [r.timestamp for r in stored.records()] == [424242]


def test_validation_errors(fs):
    log = open_log(fs, LogConfig(max_message_bytes=100, message_timestamp_difference_max_ms=50))
    with pytest.raises(RecordTooLarge):
        log.append(batch(b"x" * 200, ts=1000))
    with pytest.raises(InvalidTimestamp):
        log.append(batch(b"x", ts=2000), now_ms=1000)
    with pytest.raises(CorruptRecord):
        log.append(bytearray(b"\x00" * 70))
    with pytest.raises(TypeError):
        log.append(bytes(batch(b"x")))
    assert log.append(batch(b"x", ts=1020), now_ms=1000).base_offset == 0


def test_flush_group_commit_from_threads(fs):
    log = open_log(fs)
    fsyncs = []
    original = type(log.segments[0].log).fsync

    def slow_fsync(self):
        fsyncs.append(1)
        original(self)

    type(log.segments[0].log).fsync = slow_fsync
    try:
        assert log.flush() == 0 and not fsyncs  # nothing to flush
        for i in range(10):
            log.append(batch(b"%d" % i))
        results = []
        threads = [threading.Thread(target=lambda: results.append(log.flush())) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        type(log.segments[0].log).fsync = original
    assert results == [10] * 8 and log.flushed_offset == 10
    assert len(fsyncs) < 8
    fs.restart()  # power cut: everything flushed survives
    assert values(open_log(fs)) == [b"%d" % i for i in range(10)]


def test_flush_messages_fsyncs_inline(fs):
    log = open_log(fs, LogConfig(flush_messages=3))
    log.append(batch(b"a", b"b"))
    assert log.flushed_offset == 0
    log.append(batch(b"c"))
    assert log.flushed_offset == 3
    log.append(batch(b"d"))
    assert not log.flush_due(10**12) or log.config.flush_ms
    assert open_log(fs, LogConfig(flush_ms=100), path="/x").flush_due(0) is False


def test_flush_ms_is_reported_due(fs):
    log = open_log(fs, LogConfig(flush_ms=100), clock=lambda: 1000)
    log.append(batch(b"a"), now_ms=1000)
    assert not log.flush_due(1050) and log.flush_due(1100)
    log.flush()
    assert not log.flush_due(5000)


def test_truncate_to(fs):
    log = open_log(fs, LogConfig(segment_bytes=300))
    for i in range(20):
        log.append(batch(b"x%02d" % i, b"y%02d" % i))  # offsets 2i, 2i+1
    log.flush()
    assert log.truncate_to(15) == 14  # mid-batch: cut at the batch boundary below
    assert log.log_end_offset == log.high_watermark == log.flushed_offset == 14
    assert log.append(batch(b"new")).base_offset == 14
    assert values(log)[-2:] == [b"y06", b"new"]
    fs.restart(lose_unsynced="none")  # the truncation is durable and offsets stay dense
    log = open_log(fs, LogConfig(segment_bytes=300))
    assert [b.base_offset for b in read_all(log)] == list(range(0, 14, 2)) + [14]
    assert log.truncate_to(0) == 0 and log.log_end_offset == 0 and log.read(0, 10) == []
    assert log.append(batch(b"again")).base_offset == 0


def test_delete_records_moves_log_start_and_persists(fs):
    log = open_log(fs, LogConfig(segment_bytes=300))
    for i in range(20):
        log.append(batch(b"v%02d" % i))
    segments = log.segment_count
    assert log.delete_records(9) == 9
    assert log.log_start_offset == 9 and log.segment_count < segments
    with pytest.raises(OffsetOutOfRange):
        log.read(8, 100)
    assert next(iter_batches(log.read(9, 1)[0])).base_offset == 9
    with pytest.raises(OffsetOutOfRange):
        log.delete_records(21)
    assert log.delete_records(3) == 9  # never backwards
    log.flush()
    fs.restart()
    assert open_log(fs, LogConfig(segment_bytes=300)).log_start_offset == 9
    log = open_log(fs, LogConfig(segment_bytes=300))
    assert log.delete_records(-1) == 20 and log.log_end_offset == 20
    assert log.append(batch(b"after")).base_offset == 20


def test_retention_by_time_and_size(fs):
    config = LogConfig(segment_bytes=300, retention_ms=1000)
    log = open_log(fs, config)
    for i in range(30):
        log.append(batch(b"v%02d" % i, ts=10_000 + i * 100))
    segments = log.segment_count
    assert log.apply_retention(now_ms=10_000) == 0
    deleted = log.apply_retention(now_ms=11_500)
    assert 0 < deleted < segments
    assert log.log_start_offset == log.segments[0].base_offset > 0
    assert all(s.max_timestamp >= 10_500 for s in log.segments[:-1])
    log.apply_retention(now_ms=10**12)
    assert log.segment_count == 1 and log.log_end_offset == 30  # the active segment stays
    log2 = open_log(fs, LogConfig(segment_bytes=300, retention_bytes=600), path="/size")
    for i in range(30):
        log2.append(batch(b"v%02d" % i))
    log2.apply_retention(now_ms=0)
    assert log2.size_bytes - log2.segments[-1].size <= 600
    assert log2.size_bytes > 600 - 300
    keep = LogConfig(segment_bytes=300, retention_ms=1000, cleanup_policy="compact")
    log3 = open_log(fs, keep, path="/compacted")
    for i in range(30):
        log3.append(batch(b"v", key=b"k%d" % i))
    assert log3.apply_retention(now_ms=10**12) == 0


def test_size_and_close_rejects_appends(fs):
    log = open_log(fs)
    log.append(batch(b"a"))
    assert log.size_bytes == len(log.read(0, 1)[0])
    log.close()
    from kafkalite.log import StorageError
    with pytest.raises(StorageError):
        log.append(batch(b"b"))


def test_segments_removed_by_retention_stay_readable_until_the_owner_closes_them(fs):
    # housekeep() may run in a worker thread while the owning thread is in the middle of a read that
    # already picked its segment: removal must not close that segment's file under it.
    log = open_log(fs, LogConfig(segment_bytes=300, retention_ms=1000))
    for i in range(30):
        log.append(batch(b"v%02d" % i, ts=10_000))
    first = log.segments[0]
    assert log.apply_retention(now_ms=10**12) > 0
    assert first not in log.segments and not fs.exists(first.path(".log"))
    assert first.read(0, 10), "a removed segment's file was closed before the owner said so"
    log.close_retired()
    assert first.closed
    with pytest.raises((OSError, ValueError)):
        first.read(0, 10)
    assert log.log_end_offset == 30 and values(log)[-1] == b"v29"
