"""Turning fetched record batches into ConsumerRecords: the consumer's hot loop.

RecordBatch.records() (kafkalite.protocol) is the reference decoder; the ones here give the same records
(tests compare them) faster. decode_records_py inlines one- and two-byte varints, which are nearly all of
them, because decoding is most of a Python consumer's time; the C extension kafkalite_client._records
(built from _records.c when a compiler is there) does the same several times faster and is used when it
imports, unless KAFKALITE_PURE_PYTHON=1 is set. ACCELERATED says which one decode_batch uses.
"""

from __future__ import annotations

import os

from kafkalite.protocol import compression
from kafkalite.protocol.errors import DecodeError
from kafkalite.protocol.record_batch import CODEC_MASK, HEADER_SIZE, TIMESTAMP_TYPE_BIT, RecordBatch

from kafkalite_client.records import ConsumerRecord

_decode_records_c = None
if os.environ.get("KAFKALITE_PURE_PYTHON") != "1":
    try:
        from kafkalite_client._records import decode_records as _decode_records_c
    except ImportError:  # installed without a compiler
        pass

ACCELERATED = _decode_records_c is not None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint of any length (the slow path)."""
    shift = 0
    n = 0
    while True:
        b = data[pos]
        pos += 1
        if shift == 63 and b > 1:  # the tenth byte holds bit 63 only, as in the C decoder
            raise DecodeError("varint is too long")
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return (n >> 1) ^ -(n & 1), pos
        shift += 7


def decode_batch(batch: RecordBatch, topic: str, partition: int, min_offset: int, out: list) -> None:
    """Append the batch's records at or after min_offset to `out`."""
    # The attribute bits directly, not through the codec and log_append_time properties: this runs per batch,
    # and with 1 KiB records that is every 15 records. Uncompressed records go to C as a view, uncopied.
    attributes = batch.attributes
    codec = attributes & CODEC_MASK
    body = batch.buf[HEADER_SIZE:]
    data = compression.decompress(codec, body) if codec else body
    _decode_records(data, batch.records_count, batch.base_offset, batch.base_timestamp,
                    attributes & TIMESTAMP_TYPE_BIT != 0, batch.max_timestamp, topic, partition, min_offset,
                    ConsumerRecord, out)


def decode_records_py(data, count: int, base_offset: int, base_ts: int, log_append: bool, max_timestamp: int,
                      topic: str, partition: int, min_offset: int, record_class, out) -> None:
    """Append a record_class(...) to `out` for each of the `count` records in `data` (a batch's decompressed
    records) at or after min_offset. The C decode_records takes the same arguments and must agree."""
    if type(data) is not bytes:
        data = bytes(data)  # slices of a memoryview would be views, not the bytes records hold
    ts_type = 1 if log_append else 0
    size = len(data)
    pos = 0
    try:
        for _ in range(count):
            b = data[pos]
            if b < 0x80:
                length = (b >> 1) ^ -(b & 1)
                pos += 1
            elif data[pos + 1] < 0x80:
                b = (b & 0x7F) | (data[pos + 1] << 7)
                length = (b >> 1) ^ -(b & 1)
                pos += 2
            else:
                length, pos = _varint(data, pos)
            end = pos + length
            if length <= 0 or end > size:
                raise DecodeError("record length runs past the batch")
            pos += 1  # attributes
            b = data[pos]
            if b < 0x80:
                ts_delta = (b >> 1) ^ -(b & 1)
                pos += 1
            elif data[pos + 1] < 0x80:
                b = (b & 0x7F) | (data[pos + 1] << 7)
                ts_delta = (b >> 1) ^ -(b & 1)
                pos += 2
            else:
                ts_delta, pos = _varint(data, pos)
            b = data[pos]
            if b < 0x80:
                off_delta = (b >> 1) ^ -(b & 1)
                pos += 1
            elif data[pos + 1] < 0x80:
                b = (b & 0x7F) | (data[pos + 1] << 7)
                off_delta = (b >> 1) ^ -(b & 1)
                pos += 2
            else:
                off_delta, pos = _varint(data, pos)
            b = data[pos]
            if b < 0x80:
                n = (b >> 1) ^ -(b & 1)
                pos += 1
            elif data[pos + 1] < 0x80:
                b = (b & 0x7F) | (data[pos + 1] << 7)
                n = (b >> 1) ^ -(b & 1)
                pos += 2
            else:
                n, pos = _varint(data, pos)
            if n == -1:
                key = None
            elif n < 0:
                raise DecodeError("record field length is negative")
            else:
                key = data[pos : pos + n]
                pos += n
            b = data[pos]
            if b < 0x80:
                n = (b >> 1) ^ -(b & 1)
                pos += 1
            elif data[pos + 1] < 0x80:
                b = (b & 0x7F) | (data[pos + 1] << 7)
                n = (b >> 1) ^ -(b & 1)
                pos += 2
            else:
                n, pos = _varint(data, pos)
            if n == -1:
                value = None
            elif n < 0:
                raise DecodeError("record field length is negative")
            else:
                value = data[pos : pos + n]
                pos += n
            b = data[pos]
            if b < 0x80:
                n_headers = (b >> 1) ^ -(b & 1)
                pos += 1
            elif data[pos + 1] < 0x80:
                b = (b & 0x7F) | (data[pos + 1] << 7)
                n_headers = (b >> 1) ^ -(b & 1)
                pos += 2
            else:
                n_headers, pos = _varint(data, pos)
            if n_headers < 0 or n_headers > end - pos:
                raise DecodeError("bad record header count")
            headers = []
            for _ in range(n_headers):
                n, pos = _varint(data, pos)
                if n < 0:
                    raise DecodeError("bad record header key")
                hkey = data[pos : pos + n].decode("utf-8")
                pos += n
                n, pos = _varint(data, pos)
                if n == -1:
                    hvalue = None
                elif n < 0:
                    raise DecodeError("record header value length is negative")
                else:
                    hvalue = data[pos : pos + n]
                    pos += n
                headers.append((hkey, hvalue))
            if pos != end:
                raise DecodeError("record length does not match its fields")
            offset = base_offset + off_delta
            if offset >= min_offset:
                out.append(record_class(topic, partition, offset, max_timestamp if log_append else base_ts + ts_delta,
                                        key, value, headers, ts_type))
    except (IndexError, UnicodeDecodeError) as e:
        raise DecodeError(f"malformed record in batch at offset {base_offset}: {e}") from None
    if pos != size:
        raise DecodeError(f"{size - pos} bytes left after the last record of a batch")


_decode_records = _decode_records_c or decode_records_py
