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
