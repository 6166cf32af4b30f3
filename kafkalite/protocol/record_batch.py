"""Kafka record batch v2 (magic 2): the header layout, a zero-copy view, validation, record iteration and a
builder.

This module is the only place that knows where the header's fields lie (HEADER below; docs/storage.md has the
same table for readers of the files). A batch is the 61-byte header followed by the records, compressed as a
whole when the attributes say so. baseOffset and partitionLeaderEpoch lie outside the CRC, so the log assigns
them in place without recomputing it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterator, Sequence

import crc32c as _crc32c

from kafkalite.protocol import compression
from kafkalite.protocol.errors import DecodeError
from kafkalite.protocol.primitives import read_varint, read_varlong, write_varint

# The 61-byte batch header. Everyone else uses HEADER, the *_AT offsets and the functions below.
HEADER = struct.Struct(
    ">"     # big-endian; offset, field
    "q"     #  0 baseOffset            outside the CRC: the log assigns it
    "i"     #  8 batchLength           bytes after this field
    "i"     # 12 partitionLeaderEpoch  outside the CRC: the log assigns it
    "b"     # 16 magic                 2
    "I"     # 17 crc                   CRC-32C of bytes 21..end
    "h"     # 21 attributes            bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control, 6 delete horizon
    "i"     # 23 lastOffsetDelta
    "q"     # 27 baseTimestamp
    "q"     # 35 maxTimestamp          with LogAppendTime: the broker's append time
    "q"     # 43 producerId
    "h"     # 51 producerEpoch
    "i"     # 53 baseSequence
    "i"     # 57 recordsCount          then the records, from byte 61
)
(BASE_OFFSET_AT, LENGTH_AT, LEADER_EPOCH_AT, MAGIC_AT, CRC_AT, ATTRIBUTES_AT, LAST_OFFSET_DELTA_AT,
 BASE_TIMESTAMP_AT, MAX_TIMESTAMP_AT, PRODUCER_ID_AT, PRODUCER_EPOCH_AT, BASE_SEQUENCE_AT, RECORDS_COUNT_AT) = (
    struct.calcsize(HEADER.format[:n]) for n in range(1, len(HEADER.format)))
HEADER_SIZE = HEADER.size  # 61
LOG_OVERHEAD = LEADER_EPOCH_AT  # baseOffset + batchLength: the part of the header batchLength does not count
CRC_START = ATTRIBUTES_AT  # the CRC covers bytes CRC_START..end
MAGIC_OFFSET = MAGIC_AT
_BEFORE_CRC = struct.Struct(">" + HEADER.format[1:6])  # baseOffset .. crc
_AFTER_CRC = struct.Struct(">" + HEADER.format[6:])  # attributes .. recordsCount
_INT64 = struct.Struct(">q")
_INT32 = struct.Struct(">i")
_INT16 = struct.Struct(">h")
_UINT32 = struct.Struct(">I")

CODEC_MASK = 0x07
TIMESTAMP_TYPE_BIT = 0x08  # set: LogAppendTime
TRANSACTIONAL_BIT = 0x10
CONTROL_BIT = 0x20
DELETE_HORIZON_BIT = 0x40  # set by compaction (KIP-534): baseTimestamp holds when the batch may be removed

NO_PRODUCER_ID = -1
NO_SEQUENCE = -1
NO_PARTITION_LEADER_EPOCH = -1


def crc32c(data) -> int:
    return _crc32c.crc32c(data)


def batch_length_at(buf, position: int = 0) -> int:
    """batchLength of the batch starting at `position` (the whole batch is batchLength + LOG_OVERHEAD bytes)."""
    return _INT32.unpack_from(buf, position + LENGTH_AT)[0]


def partition_leader_epoch_at(buf, position: int = 0) -> int:
    return _INT32.unpack_from(buf, position + LEADER_EPOCH_AT)[0]


def set_base_offset(batch: bytearray | memoryview, base_offset: int, leader_epoch: int = 0) -> None:
    """Assign offsets in place: baseOffset and partitionLeaderEpoch lie outside the CRC."""
    _INT64.pack_into(batch, BASE_OFFSET_AT, base_offset)
    _INT32.pack_into(batch, LEADER_EPOCH_AT, leader_epoch)


def set_partition_leader_epoch(batch: bytearray | memoryview, leader_epoch: int) -> None:
    _INT32.pack_into(batch, LEADER_EPOCH_AT, leader_epoch)


def stamp_log_append_time(batch: bytearray | memoryview, now_ms: int) -> None:
    """LogAppendTime: set the timestamp-type bit and maxTimestamp (both inside the CRC), then recompute the CRC."""
    (attributes,) = _INT16.unpack_from(batch, ATTRIBUTES_AT)
    _INT16.pack_into(batch, ATTRIBUTES_AT, attributes | TIMESTAMP_TYPE_BIT)
    _INT64.pack_into(batch, MAX_TIMESTAMP_AT, now_ms)
    _UINT32.pack_into(batch, CRC_AT, crc32c(memoryview(batch)[CRC_START:]))


def encode_header(payload, *, attributes: int, last_offset_delta: int, base_timestamp: int, max_timestamp: int,
                  records_count: int, producer_id: int = NO_PRODUCER_ID, producer_epoch: int = -1,
                  base_sequence: int = NO_SEQUENCE, base_offset: int = 0,
                  partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH) -> bytes:
    """The 61-byte header for `payload` (the encoded, possibly compressed records that follow it), CRC included.
    The batch is header + payload."""
    after_crc = _AFTER_CRC.pack(attributes, last_offset_delta, base_timestamp, max_timestamp, producer_id,
                                producer_epoch, base_sequence, records_count)
    crc = _crc32c.crc32c(payload, _crc32c.crc32c(after_crc))
    length = HEADER_SIZE - LOG_OVERHEAD + len(payload)
    return _BEFORE_CRC.pack(base_offset, length, partition_leader_epoch, 2, crc) + after_crc


@dataclass(slots=True)
class Record:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


class RecordBatch:
    """A view over one v2 batch in a buffer. Reading header fields never copies the batch."""

    __slots__ = (
        "buf", "base_offset", "batch_length", "partition_leader_epoch", "magic", "crc", "attributes",
        "last_offset_delta", "base_timestamp", "max_timestamp", "producer_id", "producer_epoch",
        "base_sequence", "records_count",
    )

    def __init__(self, buf: memoryview):
        if len(buf) < HEADER_SIZE:
            raise DecodeError(f"record batch shorter than its {HEADER_SIZE}-byte header ({len(buf)} bytes)")
        (
            self.base_offset, self.batch_length, self.partition_leader_epoch, self.magic, self.crc,
            self.attributes, self.last_offset_delta, self.base_timestamp, self.max_timestamp,
            self.producer_id, self.producer_epoch, self.base_sequence, self.records_count,
        ) = HEADER.unpack_from(buf, 0)
        if self.magic != 2:
            raise DecodeError(f"record batch magic {self.magic} is not 2")
        if self.batch_length + LOG_OVERHEAD != len(buf):
            raise DecodeError(f"batchLength {self.batch_length} does not match {len(buf)} bytes")
        self.buf = buf

    @property
    def size(self) -> int:
        return len(self.buf)

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def codec(self) -> int:
        return self.attributes & CODEC_MASK

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_BIT)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_BIT)

    @property
    def log_append_time(self) -> bool:
        return bool(self.attributes & TIMESTAMP_TYPE_BIT)

    def crc_ok(self) -> bool:
        return crc32c(self.buf[CRC_START:]) == self.crc

    def records(self) -> Iterator[Record]:
        """Decompress (when needed) and decode each record; raises DecodeError on any inconsistency."""
        body = self.buf[HEADER_SIZE:]
        if self.codec:
            body = memoryview(compression.decompress(self.codec, body))
        pos = 0
        end = len(body)
        for _ in range(self.records_count):
            record, pos = _decode_record(body, pos, end, self)
            yield record
        if pos != end:
            raise DecodeError(f"{end - pos} bytes left after the last record of a batch")


def _decode_record(body: memoryview, pos: int, end: int, batch: RecordBatch) -> tuple[Record, int]:
    length, pos = read_varint(body, pos)
    if length < 0 or pos + length > end:
        raise DecodeError("record length runs past the batch")
    stop = pos + length
    if stop - pos < 1:
        raise DecodeError("empty record")
    pos += 1  # attributes, unused in v2
    ts_delta, pos = read_varlong(body, pos)
    off_delta, pos = read_varint(body, pos)
    key, pos = _varbytes(body, pos, stop)
    value, pos = _varbytes(body, pos, stop)
    count, pos = read_varint(body, pos)
    if count < 0 or count > stop - pos:
        raise DecodeError("bad record header count")
    headers = []
    for _ in range(count):
        hkey_len, pos = read_varint(body, pos)
        if hkey_len < 0 or pos + hkey_len > stop:
            raise DecodeError("bad record header key")
        try:
            hkey = bytes(body[pos : pos + hkey_len]).decode("utf-8")
        except UnicodeDecodeError as e:
            raise DecodeError("record header key is not UTF-8") from e
        pos += hkey_len
        hvalue, pos = _varbytes(body, pos, stop)
        headers.append((hkey, hvalue))
    if pos != stop:
        raise DecodeError("record length does not match its fields")
    timestamp = batch.max_timestamp if batch.log_append_time else batch.base_timestamp + ts_delta
    return Record(batch.base_offset + off_delta, timestamp, key, value, headers), pos


def _varbytes(body: memoryview, pos: int, stop: int) -> tuple[bytes | None, int]:
    n, pos = read_varint(body, pos)
    if n == -1:
        return None, pos
    if n < 0 or pos + n > stop:
        raise DecodeError("record field length runs past the record")
    return bytes(body[pos : pos + n]), pos + n


def iter_batches(buf) -> Iterator[RecordBatch]:
    """Split a records field (one or more concatenated batches) into views; raises DecodeError if malformed."""
    view = memoryview(buf)
    pos = 0
    end = len(view)
    while pos < end:
        if end - pos < LOG_OVERHEAD:
            raise DecodeError("trailing bytes shorter than a batch header")
        length = batch_length_at(view, pos)
        size = length + LOG_OVERHEAD
        if length < HEADER_SIZE - LOG_OVERHEAD or pos + size > end:
            raise DecodeError(f"record batch length {length} is out of range")
        yield RecordBatch(view[pos : pos + size])
        pos += size


def iter_batches_lenient(buf) -> Iterator[RecordBatch]:
    """Like iter_batches, but stops quietly at a partial batch at the end (Fetch may cut the last one)."""
    view = memoryview(buf)
    pos = 0
    end = len(view)
    while end - pos >= HEADER_SIZE:
        length = batch_length_at(view, pos)
        size = length + LOG_OVERHEAD
        if length < HEADER_SIZE - LOG_OVERHEAD or pos + size > end:
            return
        yield RecordBatch(view[pos : pos + size])
        pos += size


def build_batch(
    records: Sequence[tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes | None]]] | tuple],
    *,
    base_offset: int = 0,
    timestamps: Sequence[int] | int = 0,
    codec: int = compression.NONE,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = -1,
    base_sequence: int = NO_SEQUENCE,
    partition_leader_epoch: int = -1,
    attributes: int = 0,
    base_timestamp: int | None = None,
) -> bytes:
    """Build one v2 batch from (key, value, headers) tuples. `timestamps` is one per record, or one for all.
    base_timestamp defaults to the smallest timestamp (compaction sets a delete horizon there instead)."""
    if not records:
        raise ValueError("a record batch needs at least one record")
    if isinstance(timestamps, int):
        timestamps = [timestamps] * len(records)
    base_ts = min(timestamps) if base_timestamp is None else base_timestamp
    body = bytearray()
    for delta, (key, value, *rest) in enumerate(records):
        headers = rest[0] if rest else ()
        rec = bytearray(b"\x00")
        write_varint(rec, timestamps[delta] - base_ts)
        write_varint(rec, delta)
        _write_varbytes(rec, key)
        _write_varbytes(rec, value)
        write_varint(rec, len(headers))
        for hkey, hvalue in headers:
            hk = hkey.encode("utf-8")
            write_varint(rec, len(hk))
            rec += hk
            _write_varbytes(rec, hvalue)
        write_varint(body, len(rec))
        body += rec
    payload = compression.compress(codec, bytes(body)) if codec else bytes(body)
    header = encode_header(
        payload, attributes=(attributes & ~CODEC_MASK) | codec, last_offset_delta=len(records) - 1,
        base_timestamp=base_ts, max_timestamp=max(timestamps), records_count=len(records), producer_id=producer_id,
        producer_epoch=producer_epoch, base_sequence=base_sequence, base_offset=base_offset,
        partition_leader_epoch=partition_leader_epoch)
    return header + payload


def _write_varbytes(out: bytearray, data: bytes | None) -> None:
    if data is None:
        write_varint(out, -1)
    else:
        write_varint(out, len(data))
        out += data
