"""Record batch v2: our builder and view against aiokafka's and kafka-python's record code as oracles."""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from aiokafka.record import default_records as aiokafka_records
from kafka.record import default_records as kafka_python_records

from kafkalite.protocol import compression, record_batch
from kafkalite.protocol.errors import DecodeError
from kafkalite.protocol.record_batch import (
    CONTROL_BIT,
    CRC_START,
    HEADER_SIZE,
    TRANSACTIONAL_BIT,
    RecordBatch,
    build_batch,
    iter_batches,
    iter_batches_lenient,
    set_base_offset,
)

CODECS = [compression.NONE, compression.GZIP, compression.SNAPPY, compression.LZ4, compression.ZSTD]
CODEC_IDS = [compression.NAMES[c] for c in CODECS]

RECORDS = [
    (b"key-0", b"value " * 50, [("h1", b"v1"), ("empty", b""), ("null", None)]),
    (None, b"no key " * 30, []),
    (b"tombstone", None, [("x", b"y" * 40)]),
    (b"", b"", []),
]
TIMESTAMPS = [1_700_000_000_000, 1_700_000_000_005, 1_699_999_999_990, 1_700_000_000_100]

# The readers each client ships: aiokafka's compiled one and its pure-Python twin, and kafka-python's.
READERS = {
    "aiokafka-c": aiokafka_records.DefaultRecordBatch,
    "aiokafka-py": aiokafka_records._DefaultRecordBatchPy,
    "kafka-python": kafka_python_records.DefaultRecordBatch,
}
BUILDERS = {
    "aiokafka-c": aiokafka_records.DefaultRecordBatchBuilder,
    "aiokafka-py": aiokafka_records._DefaultRecordBatchBuilderPy,
    "kafka-python": kafka_python_records.DefaultRecordBatchBuilder,
}


def sample_batch(codec=compression.NONE, **kw) -> bytes:
    return build_batch(RECORDS, timestamps=TIMESTAMPS, codec=codec, **kw)


def as_tuples(records):
    return [(r.offset, r.timestamp, r.key, r.value, [tuple(h) for h in r.headers]) for r in records]


EXPECTED = [
    (100 + i, TIMESTAMPS[i], key, value, list(headers)) for i, (key, value, headers) in enumerate(RECORDS)
]


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_build_then_view(codec):
    raw = sample_batch(codec, base_offset=100, producer_id=42, producer_epoch=3, base_sequence=9,
                       partition_leader_epoch=5)
    batch = RecordBatch(memoryview(raw))
    assert ((batch.base_offset, batch.batch_length, batch.partition_leader_epoch, batch.magic)
            == (100, len(raw) - 12, 5, 2))
    assert (batch.codec, batch.last_offset_delta, batch.records_count) == (codec, 3, 4)
    assert (batch.base_timestamp, batch.max_timestamp) == (min(TIMESTAMPS), max(TIMESTAMPS))
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (42, 3, 9)
    assert (batch.last_offset, batch.next_offset, batch.size) == (103, 104, len(raw))
    assert not batch.is_control and not batch.is_transactional and not batch.log_append_time
    assert batch.crc_ok()
    assert as_tuples(batch.records()) == EXPECTED
    if codec:
        assert len(raw) < HEADER_SIZE + sum(len(v or b"") for _, v, _ in RECORDS)  # really compressed


@pytest.mark.parametrize("reader", READERS, ids=list(READERS))
@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_clients_read_our_batches(codec, reader):
    raw = sample_batch(codec, base_offset=100, producer_id=42, producer_epoch=3, base_sequence=9)
    theirs = READERS[reader](bytes(raw))
    assert theirs.validate_crc()
    assert theirs.compression_type == codec and theirs.base_offset == 100 and not theirs.is_control_batch
    assert (theirs.producer_id, theirs.producer_epoch, theirs.base_sequence) == (42, 3, 9)
    assert as_tuples(list(theirs)) == EXPECTED


@pytest.mark.parametrize("builder", BUILDERS, ids=list(BUILDERS))
@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_we_read_client_batches(codec, builder):
    b = BUILDERS[builder](magic=2, compression_type=codec, is_transactional=0, producer_id=7,
                          producer_epoch=1, base_sequence=0, batch_size=1 << 20)
    for offset, (key, value, headers) in enumerate(RECORDS):
        b.append(offset, timestamp=TIMESTAMPS[offset], key=key, value=value, headers=headers)
    raw = bytes(b.build())
    batch = RecordBatch(memoryview(raw))
    assert batch.crc_ok() and batch.codec == codec and batch.producer_id == 7
    expected = [(i, ts, k, v, h) for i, (_, ts, k, v, h) in enumerate(EXPECTED)]
    assert as_tuples(batch.records()) == expected
    if codec == compression.SNAPPY:
        # The Python clients frame snappy the xerial way; librdkafka sends it raw.
        assert raw[HEADER_SIZE:].startswith(b"\x82SNAPPY\x00")


def test_raw_snappy_reads():
    raw = sample_batch(compression.SNAPPY, base_offset=100)
    assert not raw[HEADER_SIZE:].startswith(b"\x82SNAPPY\x00")
    assert as_tuples(RecordBatch(memoryview(raw)).records()) == EXPECTED


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_bit_flips_after_byte_21_break_the_crc(codec):
    raw = sample_batch(codec)
    for pos in range(CRC_START, len(raw)):
        flipped = bytearray(raw)
        flipped[pos] ^= 0x10
        assert not RecordBatch(memoryview(flipped)).crc_ok(), pos
    for pos in range(17, 21):  # the stored CRC itself
        flipped = bytearray(raw)
        flipped[pos] ^= 0x01
        assert not RecordBatch(memoryview(flipped)).crc_ok()


def test_fields_outside_the_crc():
    raw = bytearray(sample_batch())
    set_base_offset(raw, 123_456_789, leader_epoch=7)
    batch = RecordBatch(memoryview(raw))
    assert batch.base_offset == 123_456_789 and batch.partition_leader_epoch == 7 and batch.crc_ok()
    assert [r.offset for r in batch.records()] == [123_456_789 + i for i in range(4)]
    theirs = aiokafka_records.DefaultRecordBatch(bytes(raw))
    assert theirs.validate_crc() and [r.offset for r in theirs] == [123_456_789 + i for i in range(4)]


def test_set_base_offset_through_a_memoryview_of_a_frame():
    frame = bytearray(b"header" + sample_batch())
    view = memoryview(frame)[6:]
    set_base_offset(view, 5)
    assert RecordBatch(memoryview(frame)[6:]).base_offset == 5


@pytest.mark.parametrize("delta", [-1, 1, 1000])
def test_length_mismatch(delta):
    raw = bytearray(sample_batch())
    struct.pack_into(">i", raw, 8, len(raw) - 12 + delta)
    with pytest.raises(DecodeError):
        RecordBatch(memoryview(raw))


def test_short_and_wrong_magic():
    raw = bytearray(sample_batch())
    with pytest.raises(DecodeError):
        RecordBatch(memoryview(raw[:60]))
    raw[16] = 1
    with pytest.raises(DecodeError):
        RecordBatch(memoryview(raw))


def test_iter_batches_and_truncation():
    batches = [sample_batch(c, base_offset=i * 4) for i, c in enumerate(CODECS)]
    stream = b"".join(batches)
    assert [bytes(b.buf) for b in iter_batches(stream)] == batches
    boundaries = {0}
    for b in batches:
        boundaries.add(max(boundaries) + len(b))
    for cut in range(len(stream)):
        whole = [b for b in batches if stream.find(b) + len(b) <= cut]
        lenient = [bytes(b.buf) for b in iter_batches_lenient(stream[:cut])]
        assert lenient == whole
        if cut in boundaries:
            assert [bytes(b.buf) for b in iter_batches(stream[:cut])] == whole
        else:
            with pytest.raises(DecodeError):
                list(iter_batches(stream[:cut]))


def test_iter_batches_is_zero_copy():
    stream = bytearray(sample_batch() + sample_batch())
    views = [b.buf for b in iter_batches(memoryview(stream))]
    assert all(v.obj is stream for v in views)


@pytest.mark.parametrize("length", [0x7FFFFFFF, -1, -(1 << 31), 10])
def test_iter_batches_bad_lengths_without_allocating(length):
    raw = bytearray(sample_batch())
    struct.pack_into(">i", raw, 8, length)
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError):
            list(iter_batches(raw))
        assert list(iter_batches_lenient(raw)) == []
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


def test_control_batch_detection():
    control = RecordBatch(memoryview(build_batch([(b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x00")],
                                                 attributes=CONTROL_BIT | TRANSACTIONAL_BIT, producer_id=5)))
    assert control.is_control and control.is_transactional and control.crc_ok()
    assert aiokafka_records.DefaultRecordBatch(bytes(control.buf)).is_control_batch
    assert kafka_python_records.DefaultRecordBatch(bytes(control.buf)).is_control_batch
    plain = RecordBatch(memoryview(sample_batch()))
    assert not plain.is_control and not plain.is_transactional


def test_records_count_claims_more_than_the_body():
    raw = bytearray(sample_batch())
    struct.pack_into(">i", raw, 57, 0x7FFFFFFF)
    with pytest.raises(DecodeError):
        list(RecordBatch(memoryview(raw)).records())


@pytest.mark.parametrize("codec", CODECS[1:], ids=CODEC_IDS[1:])
def test_zip_bomb(codec, monkeypatch):
    """A small compressed batch that expands past the limit raises, without expanding it all."""
    limit = 1 << 20
    monkeypatch.setattr(compression, "MAX_DECOMPRESSED", limit)
    bomb = build_batch([(None, bytes(16 * limit))], codec=codec)
    assert len(bomb) < limit
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError):
            list(RecordBatch(memoryview(bomb)).records())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * limit


def test_stated_sizes_beyond_the_limit_are_refused_before_allocating():
    # Snappy states the uncompressed length up front; a zstd frame may too. Both claim 4 GiB here.
    import zstandard

    compressor = zstandard.ZstdCompressor().compressobj(size=1 << 32)
    zstd_claim = compressor.compress(bytes(1 << 16))  # header plus a little; never finished
    for codec, data in ((compression.SNAPPY, b"\xff\xff\xff\xff\x0f\x00abc"), (compression.ZSTD, zstd_claim)):
        tracemalloc.start()
        try:
            with pytest.raises(DecodeError):
                compression.decompress(codec, data)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 1 << 20


@pytest.mark.parametrize("codec", CODECS[1:], ids=CODEC_IDS[1:])
def test_corrupt_compressed_data_is_a_decode_error(codec):
    raw = sample_batch(codec)
    for cut in (HEADER_SIZE + 1, HEADER_SIZE + 8, len(raw) - 3):
        batch = bytearray(raw[:cut])
        struct.pack_into(">i", batch, 8, len(batch) - 12)
        with pytest.raises(DecodeError):
            list(RecordBatch(memoryview(batch)).records())


# -- the header definition: one place, checked against an independent reader ---------------------------------

def test_header_field_offsets_are_kafkas():
    # Offsets of DefaultRecordBatch.java's fields; everything else in the project takes them from HEADER.
    assert (record_batch.BASE_OFFSET_AT, record_batch.LENGTH_AT, record_batch.LEADER_EPOCH_AT,
            record_batch.MAGIC_AT, record_batch.CRC_AT, record_batch.ATTRIBUTES_AT,
            record_batch.LAST_OFFSET_DELTA_AT, record_batch.BASE_TIMESTAMP_AT, record_batch.MAX_TIMESTAMP_AT,
            record_batch.PRODUCER_ID_AT, record_batch.PRODUCER_EPOCH_AT, record_batch.BASE_SEQUENCE_AT,
            record_batch.RECORDS_COUNT_AT) == (0, 8, 12, 16, 17, 21, 23, 27, 35, 43, 51, 53, 57)
    assert HEADER_SIZE == record_batch.HEADER.size == 61 and CRC_START == 21 and record_batch.LOG_OVERHEAD == 12


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_encode_header_makes_a_batch_other_clients_read(codec):
    record = b"\x0e\x00\x00\x00\x01\x02a\x00"  # length 7, attributes, deltas 0, null key, value "a", no headers
    payload = compression.compress(codec, record) if codec else record
    header = record_batch.encode_header(
        payload, attributes=codec, last_offset_delta=0, base_timestamp=1000, max_timestamp=1000, records_count=1,
        producer_id=7, producer_epoch=2, base_sequence=40, base_offset=99, partition_leader_epoch=3)
    raw = header + payload
    ours = RecordBatch(memoryview(raw))
    assert ours.crc_ok() and (ours.base_offset, ours.partition_leader_epoch, ours.producer_id,
                              ours.producer_epoch, ours.base_sequence) == (99, 3, 7, 2, 40)
    assert [(r.offset, r.value) for r in ours.records()] == [(99, b"a")]
    theirs = aiokafka_records.DefaultRecordBatch(bytes(raw))
    assert theirs.validate_crc() and [r.value for r in theirs] == [b"a"]
    assert record_batch.batch_length_at(raw) == len(raw) - 12
    assert record_batch.batch_length_at(b"xx" + raw, 2) == len(raw) - 12


def test_leader_epoch_and_log_append_time_stamps():
    raw = bytearray(sample_batch())
    record_batch.set_partition_leader_epoch(raw, 42)
    assert record_batch.partition_leader_epoch_at(raw) == 42 and RecordBatch(memoryview(raw)).crc_ok()
    view = memoryview(bytearray(b"junk" + raw))[4:]  # in place, inside a larger buffer, as the log does
    record_batch.stamp_log_append_time(view, 1_800_000_000_000)
    stamped = RecordBatch(view)
    assert stamped.crc_ok() and stamped.log_append_time and stamped.max_timestamp == 1_800_000_000_000
    assert {r.timestamp for r in stamped.records()} == {1_800_000_000_000}
    theirs = aiokafka_records.DefaultRecordBatch(bytes(view))
    assert theirs.validate_crc() and theirs.timestamp_type == 1
