"""The bytes inside JoinGroup metadata and SyncGroup assignments for protocol type "consumer".

Kafka's ConsumerProtocol layout, shared with the Java client, librdkafka, kafkajs and aiokafka, so that
our consumers can be in one group with theirs:

    Subscription  v0: version int16, topics [string], user_data bytes (nullable)
                  v1: + owned_partitions [topic string, partitions [int32]]
                  v2: + generation_id int32        v3: + rack_id nullable string
    Assignment    v0/v1: version int16, assigned_partitions [topic string, partitions [int32]],
                         user_data bytes (nullable)

Decoding reads the fields of the version it is given and ignores any later ones.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from kafkalite.protocol.errors import DecodeError

PROTOCOL_TYPE = "consumer"
SUBSCRIPTION_VERSION = 1
ASSIGNMENT_VERSION = 1

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


@dataclass
class Subscription:
    topics: list[str]
    user_data: bytes | None = None
    owned_partitions: dict[str, list[int]] = field(default_factory=dict)
    generation_id: int = -1
    rack_id: str | None = None
    version: int = SUBSCRIPTION_VERSION


@dataclass
class Assignment:
    partitions: dict[str, list[int]]
    user_data: bytes | None = None
    version: int = ASSIGNMENT_VERSION


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes):
        self.buf = memoryview(buf)
        self.pos = 0

    @property
    def at_end(self) -> bool:
        return self.pos >= len(self.buf)

    def _take(self, st: struct.Struct) -> int:
        if self.pos + st.size > len(self.buf):
            raise DecodeError("consumer protocol data is truncated")
        (value,) = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return value

    def int16(self) -> int:
        return self._take(_I16)

    def int32(self) -> int:
        return self._take(_I32)

    def _raw(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise DecodeError("consumer protocol field runs past the end")
        out = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return out

    def string(self) -> str | None:
        n = self.int16()
        return None if n == -1 else self._raw(n).decode("utf-8")

    def bytes(self) -> bytes | None:
        n = self.int32()
        return None if n == -1 else self._raw(n)

    def count(self) -> int:
        n = self.int32()
        if n < -1 or n > len(self.buf):
            raise DecodeError(f"bad array length {n}")
        return max(n, 0)

    def topic_partitions(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for _ in range(self.count()):
            topic = self.string()
            out.setdefault(topic, []).extend(self.int32() for _ in range(self.count()))
        return out


def _string(out: bytearray, s: str | None) -> None:
    if s is None:
        out += _I16.pack(-1)
    else:
        b = s.encode("utf-8")
        out += _I16.pack(len(b)) + b


def _bytes(out: bytearray, b: bytes | None) -> None:
    if b is None:
        out += _I32.pack(-1)
    else:
        out += _I32.pack(len(b)) + b


def _topic_partitions(out: bytearray, tps: dict[str, list[int]]) -> None:
    out += _I32.pack(len(tps))
    for topic in sorted(tps):
        _string(out, topic)
        parts = sorted(tps[topic])
        out += _I32.pack(len(parts))
        for p in parts:
            out += _I32.pack(p)


def encode_subscription(sub: Subscription) -> bytes:
    out = bytearray(_I16.pack(sub.version))
    out += _I32.pack(len(sub.topics))
    for topic in sorted(sub.topics):
        _string(out, topic)
    _bytes(out, sub.user_data)
    if sub.version >= 1:
        _topic_partitions(out, sub.owned_partitions)
    if sub.version >= 2:
        out += _I32.pack(sub.generation_id)
    if sub.version >= 3:
        _string(out, sub.rack_id)
    return bytes(out)


def decode_subscription(data: bytes) -> Subscription:
    r = _Reader(data)
    version = r.int16()
    topics = [r.string() for _ in range(r.count())]
    user_data = r.bytes() if not r.at_end else None
    sub = Subscription(topics, user_data, version=version)
    if version >= 1 and not r.at_end:
        sub.owned_partitions = r.topic_partitions()
    if version >= 2 and not r.at_end:
        sub.generation_id = r.int32()
    if version >= 3 and not r.at_end:
        sub.rack_id = r.string()
    return sub


def encode_assignment(assignment: Assignment) -> bytes:
    out = bytearray(_I16.pack(assignment.version))
    _topic_partitions(out, assignment.partitions)
    _bytes(out, assignment.user_data)
    return bytes(out)


def decode_assignment(data: bytes) -> Assignment:
    if not data:
        return Assignment({})  # an empty assignment is sent as zero bytes by some clients
    r = _Reader(data)
    version = r.int16()
    partitions = r.topic_partitions()
    user_data = r.bytes() if not r.at_end else None
    return Assignment(partitions, user_data, version=version)
