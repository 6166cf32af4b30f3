"""An open producer batch: records are encoded into the v2 record format as they are appended, so the
producer always knows the batch's exact size, and closing it only compresses and adds the 61-byte header.

(kafkalite.protocol.record_batch.build_batch builds a batch from a finished list in one go; the producer
needs it incrementally. Tests check that both produce batches that decode to the same records.)
"""

from __future__ import annotations

import asyncio

from kafkalite.protocol import compression
from kafkalite.protocol.primitives import uvarint_bytes
from kafkalite.protocol.record_batch import HEADER_SIZE, NO_PRODUCER_ID, NO_SEQUENCE, TRANSACTIONAL_BIT, encode_header

# Zig-zag varints of small non-negative numbers, the common case for lengths and deltas.
_SMALL = 1 << 14
_VARINT_SMALL = [uvarint_bytes(n << 1) for n in range(_SMALL)]


def varint(n: int) -> bytes:
    if 0 <= n < _SMALL:
        return _VARINT_SMALL[n]
    return uvarint_bytes((n << 1) ^ (n >> 63))


_NULL = varint(-1)
RECORD_OVERHEAD = 24  # a bound on a record's framing beyond key, value and headers


class ProducerBatch:
    __slots__ = (
        "topic", "partition", "body", "count", "base_timestamp", "max_timestamp", "buffered",
        "created", "done", "record_futures", "closed", "encoded", "base_sequence", "attempts", "retry_at",
    )

    def __init__(self, topic: str, partition: int, created: float):
        self.topic = topic
        self.partition = partition
        self.body = bytearray()
        self.count = 0
        self.buffered = 0  # bytes counted against the producer's buffer_memory
        self.base_timestamp = 0
        self.max_timestamp = 0
        self.created = created
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()
        # (index, timestamp, future): enqueue()
        self.record_futures: list[tuple[int, int, asyncio.Future]] | None = None
        self.closed = False
        self.encoded: bytes | None = None  # kept once built, so that a retry resends identical bytes
        self.base_sequence = NO_SEQUENCE
        self.attempts = 0
        self.retry_at = 0.0

    @property
    def size(self) -> int:
        return HEADER_SIZE + len(self.body)

    def append(self, key: bytes | None, value: bytes | None, headers, timestamp: int) -> int:
        """Encode one record; returns its index in the batch."""
        index = self.count
        if index == 0:
            self.base_timestamp = self.max_timestamp = timestamp
        elif timestamp > self.max_timestamp:
            self.max_timestamp = timestamp
        parts = [b"\x00", varint(timestamp - self.base_timestamp), varint(index),
                 _NULL if key is None else varint(len(key)), key or b"",
                 _NULL if value is None else varint(len(value)), value or b"",
                 varint(len(headers))]
        for hkey, hvalue in headers:
            hk = hkey.encode("utf-8")
            parts += (varint(len(hk)), hk)
            if hvalue is None:
                parts.append(_NULL)
            else:
                parts += (varint(len(hvalue)), hvalue)
        record = b"".join(parts)
        body = self.body
        body += varint(len(record))
        body += record
        self.count = index + 1
        return index

    def encode(self, codec: int, producer_id: int = NO_PRODUCER_ID, producer_epoch: int = -1,
               base_sequence: int = NO_SEQUENCE, transactional: bool = False) -> bytes:
        """The finished batch (baseOffset 0; the broker assigns offsets). Built once; later calls return it."""
        if self.encoded is None:
            payload = compression.compress(codec, bytes(self.body)) if codec else self.body
            attributes = codec | (TRANSACTIONAL_BIT if transactional else 0)
            self.encoded = encode_header(
                payload, attributes=attributes, last_offset_delta=self.count - 1, base_timestamp=self.base_timestamp,
                max_timestamp=self.max_timestamp, records_count=self.count, producer_id=producer_id,
                producer_epoch=producer_epoch, base_sequence=base_sequence,
            ) + payload
            self.base_sequence = base_sequence
            self.body = bytearray()  # no longer needed
        return self.encoded
