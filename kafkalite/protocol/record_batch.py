"""Kafka record batch v2 (magic 2): a zero-copy view, validation, record iteration and a builder.

Layout (offsets in bytes; all integers big-endian):

    0  int64  baseOffset            ┐ outside the CRC: the broker rewrites baseOffset and
    8  int32  batchLength           │ partitionLeaderEpoch without touching the CRC
   12  int32  partitionLeaderEpoch  │
   16  int8   magic (2)             ┘
   17  uint32 crc (CRC-32C of bytes 21..end)
   21  int16  attributes  (bits 0-2 codec, 3 timestampType, 4 transactional, 5 control)
   23  int32  lastOffsetDelta
   27  int64  baseTimestamp
   35  int64  maxTimestamp
   43  int64  producerId
   51  int16  producerEpoch
   53  int32  baseSequence
   57  int32  recordsCount
   61  records (compressed as a whole when attributes say so)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterator, Sequence

import crc32c as _crc32c

from kafkalite.protocol import compression
from kafkalite.protocol.errors import DecodeError
from kafkalite.protocol.primitives import read_varint, read_varlong, write_varint

HEADER_SIZE = 61
LOG_OVERHEAD = 12  # baseOffset + batchLength: the part of the header batchLength does not count
CRC_START = 21
MAGIC_OFFSET = 16

CODEC_MASK = 0x07
TIMESTAMP_TYPE_BIT = 0x08  # set: LogAppendTime
TRANSACTIONAL_BIT = 0x10
CONTROL_BIT = 0x20

NO_PRODUCER_ID = -1
NO_SEQUENCE = -1

_HEADER = struct.Struct(">qiibIhiqqqhii")
_BASE_OFFSET = struct.Struct(">q")
_LENGTH_AT_8 = struct.Struct(">i")
_EPOCH = struct.Struct(">i")


def crc32c(data) -> int:
    return _crc32c.crc32c(data)


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
        ) = _HEADER.unpack_from(buf, 0)
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
        (length,) = _LENGTH_AT_8.unpack_from(view, pos + 8)
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
        (length,) = _LENGTH_AT_8.unpack_from(view, pos + 8)
        size = length + LOG_OVERHEAD
        if length < HEADER_SIZE - LOG_OVERHEAD or pos + size > end:
            return
        yield RecordBatch(view[pos : pos + size])
        pos += size


def set_base_offset(batch: bytearray | memoryview, base_offset: int, leader_epoch: int = 0) -> None:
    """Assign offsets in place: baseOffset and partitionLeaderEpoch lie outside the CRC."""
    _BASE_OFFSET.pack_into(batch, 0, base_offset)
    _EPOCH.pack_into(batch, 12, leader_epoch)


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
) -> bytes:
    """Build one v2 batch from (key, value, headers) tuples. `timestamps` is one per record, or one for all."""
    if not records:
        raise ValueError("a record batch needs at least one record")
    if isinstance(timestamps, int):
        timestamps = [timestamps] * len(records)
    base_ts = min(timestamps)
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
    attrs = (attributes & ~CODEC_MASK) | codec
    after_crc = struct.pack(
        ">hiqqqhii", attrs, len(records) - 1, base_ts, max(timestamps), producer_id, producer_epoch,
        base_sequence, len(records),
    ) + payload
    head = struct.pack(
        ">qiibI", base_offset, len(after_crc) + 9, partition_leader_epoch, 2, crc32c(after_crc)
    )
    return head + after_crc


def _write_varbytes(out: bytearray, data: bytes | None) -> None:
    if data is None:
        write_varint(out, -1)
    else:
        write_varint(out, len(data))
        out += data
