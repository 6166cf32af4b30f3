"""Turning fetched record batches into ConsumerRecords: the consumer's hot loop.

RecordBatch.records() (kafkalite.protocol) is the reference decoder; this one gives the same records
(tests compare the two) but inlines one- and two-byte varints, which are nearly all of them, because decoding
is most of a Python consumer's time.
"""

from __future__ import annotations

from kafkalite.protocol import compression
from kafkalite.protocol.errors import DecodeError
from kafkalite.protocol.record_batch import HEADER_SIZE, RecordBatch

from kafkalite_client.records import ConsumerRecord


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint of any length (the slow path)."""
    shift = 0
    n = 0
    while True:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return (n >> 1) ^ -(n & 1), pos
        shift += 7
        if shift > 63:
            raise DecodeError("varint is too long")


def decode_batch(batch: RecordBatch, topic: str, partition: int, min_offset: int, out: list) -> None:
    """Append the batch's records at or after min_offset to `out`."""
    body = batch.buf[HEADER_SIZE:]
    data = compression.decompress(batch.codec, body) if batch.codec else bytes(body)
    base_offset = batch.base_offset
    base_ts = batch.base_timestamp
    log_append = batch.log_append_time
    ts_type = 1 if log_append else 0
    size = len(data)
    pos = 0
    try:
        for _ in range(batch.records_count):
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
            if n < 0:
                key = None
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
            if n < 0:
                value = None
            else:
                value = data[pos : pos + n]
                pos += n
            b = data[pos]
            if b < 0x80:
                count = (b >> 1) ^ -(b & 1)
                pos += 1
            elif data[pos + 1] < 0x80:
                b = (b & 0x7F) | (data[pos + 1] << 7)
                count = (b >> 1) ^ -(b & 1)
                pos += 2
            else:
                count, pos = _varint(data, pos)
            headers = []
            for _ in range(count):
                n, pos = _varint(data, pos)
                hkey = data[pos : pos + n].decode("utf-8")
                pos += n
                n, pos = _varint(data, pos)
                if n < 0:
                    hvalue = None
                else:
                    hvalue = data[pos : pos + n]
                    pos += n
                headers.append((hkey, hvalue))
            if pos != end:
                raise DecodeError("record length does not match its fields")
            offset = base_offset + off_delta
            if offset >= min_offset:
                out.append(ConsumerRecord(topic, partition, offset,
                                          batch.max_timestamp if log_append else base_ts + ts_delta,
                                          key, value, headers, ts_type))
    except (IndexError, UnicodeDecodeError) as e:
        raise DecodeError(f"malformed record in batch at offset {base_offset}: {e}") from None
    if pos != size:
        raise DecodeError(f"{size - pos} bytes left after the last record of a batch")
