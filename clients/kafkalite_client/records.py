"""Values the client hands to callers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class RecordMetadata(NamedTuple):
    """Where a produced record was written. offset is -1 when acks=0 (the broker does not say).
    A NamedTuple: the producer makes one per record, and a tuple is the cheapest immutable value to make."""

    topic: str
    partition: int
    offset: int
    timestamp: int


class OffsetAndMetadata(int):
    """A committed offset with the metadata string committed with it, as Kafka's OffsetAndMetadata.
    It is an int (the offset), so code that reads `committed()` as a plain offset, as aiokafka's returns,
    keeps working; `.offset` and `.metadata` name the parts."""

    metadata: str

    def __new__(cls, offset: int, metadata: str | None = ""):
        self = super().__new__(cls, offset)
        self.metadata = metadata or ""
        return self

    @property
    def offset(self) -> int:
        return int(self)

    def __repr__(self) -> str:
        return f"OffsetAndMetadata(offset={int(self)}, metadata={self.metadata!r})"

    def __str__(self) -> str:  # prints as the offset, as an int does
        return str(int(self))

    def __reduce__(self):
        return OffsetAndMetadata, (int(self), self.metadata)


def to_offset_and_metadata(value) -> OffsetAndMetadata:
    """What commit() takes per partition: an offset, an (offset, metadata) pair or an OffsetAndMetadata."""
    if isinstance(value, OffsetAndMetadata):
        return value
    if isinstance(value, tuple):
        offset, metadata = value
        return OffsetAndMetadata(int(offset), metadata)
    return OffsetAndMetadata(int(value))


@dataclass(slots=True)
class ConsumerRecord:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp_type: int = 0  # 0 CreateTime, 1 LogAppendTime

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def header(self, name: str) -> bytes | None:
        """The last value of a header, or None."""
        for key, value in reversed(self.headers):
            if key == name:
                return value
        return None


def to_bytes(value, what: str) -> bytes | None:
    """Keys, values and header values: bytes-like as is, str as UTF-8, None as null."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be bytes, str or None, not {type(value).__name__}")


def to_headers(headers) -> list[tuple[str, bytes | None]]:
    if not headers:
        return []
    items = headers.items() if isinstance(headers, dict) else headers
    return [(str(k), to_bytes(v, "a header value")) for k, v in items]
