"""Records of the internal topic `__consumer_offsets`, in Kafka's own layouts.

Every key starts with an int16 version that says what the record is; the value has its own
int16 version. A null value (tombstone) deletes the key. Strings are int16 length + UTF-8
(-1 = null), bytes are int32 length + data. kafkalite writes the versions marked "written".

Offset commit (key versions 0 and 1, written: 1)
    key    int16 version | string group | string topic | int32 partition
    value  int16 version, then by version:
           0, 2  int64 offset | string metadata | int64 commit timestamp
           1     int64 offset | string metadata | int64 commit timestamp | int64 expire timestamp
           3     int64 offset | int32 leader epoch | string metadata | int64 commit timestamp  (written)

Group metadata (key version 2)
    key    int16 version (2) | string group
    value  int16 version (0-3, written: 3) | string protocol type | int32 generation
           | nullable string protocol | nullable string leader | int64 state timestamp (2+)
           | int32 member count, then per member: string member id | nullable string group instance id (3+)
           | string client id | string client host | int32 rebalance timeout (1+) | int32 session timeout
           | bytes subscription | bytes assignment

The group's partition is abs(Java String.hashCode(group)) % offsets.topic.num.partitions, as in Kafka.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from kafkalite.protocol.errors import DecodeError

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")

OFFSET_KEY_VERSION = 1
GROUP_KEY_VERSION = 2
OFFSET_VALUE_VERSION = 3
GROUP_VALUE_VERSION = 3


def java_string_hash(s: str) -> int:
    """Java's String.hashCode: 31*h + c over UTF-16 code units, as a signed 32-bit int."""
    h = 0
    data = s.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for(group_id: str, num_partitions: int) -> int:
    h = java_string_hash(group_id)
    return (0 if h == -(1 << 31) else abs(h)) % num_partitions  # Kafka's Utils.abs maps MIN_VALUE to 0


@dataclass(frozen=True)
class OffsetKey:
    group_id: str
    topic: str
    partition: int


@dataclass(frozen=True)
class GroupKey:
    group_id: str


@dataclass
class OffsetValue:
    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp_ms: int = -1
    expire_timestamp_ms: int = -1


@dataclass
class MemberValue:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass
class GroupValue:
    protocol_type: str
    generation_id: int
    protocol_name: str | None
    leader_id: str | None
    state_timestamp_ms: int
    members: list[MemberValue] = field(default_factory=list)


# ---------------------------------------------------------------- writing


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def i16(self, v: int) -> "_Writer":
        self.out += _I16.pack(v)
        return self

    def i32(self, v: int) -> "_Writer":
        self.out += _I32.pack(v)
        return self

    def i64(self, v: int) -> "_Writer":
        self.out += _I64.pack(v)
        return self

    def string(self, v: str | None) -> "_Writer":
        if v is None:
            return self.i16(-1)
        data = v.encode("utf-8")
        self.i16(len(data))
        self.out += data
        return self

    def bytes_(self, v: bytes | None) -> "_Writer":
        if v is None:
            return self.i32(-1)
        self.i32(len(v))
        self.out += v
        return self


def offset_key(group_id: str, topic: str, partition: int) -> bytes:
    return bytes(_Writer().i16(OFFSET_KEY_VERSION).string(group_id).string(topic).i32(partition).out)


def group_key(group_id: str) -> bytes:
    return bytes(_Writer().i16(GROUP_KEY_VERSION).string(group_id).out)


def offset_value(value: OffsetValue) -> bytes:
    w = _Writer().i16(OFFSET_VALUE_VERSION).i64(value.offset).i32(value.leader_epoch)
    return bytes(w.string(value.metadata).i64(value.commit_timestamp_ms).out)


def group_value(value: GroupValue) -> bytes:
    w = _Writer().i16(GROUP_VALUE_VERSION).string(value.protocol_type).i32(value.generation_id)
    w.string(value.protocol_name).string(value.leader_id).i64(value.state_timestamp_ms)
    w.i32(len(value.members))
    for m in value.members:
        w.string(m.member_id).string(m.group_instance_id).string(m.client_id).string(m.client_host)
        w.i32(m.rebalance_timeout_ms).i32(m.session_timeout_ms).bytes_(m.subscription).bytes_(m.assignment)
    return bytes(w.out)


# ---------------------------------------------------------------- reading


class _Reader:
    def __init__(self, buf) -> None:
        self.buf = memoryview(buf)
        self.pos = 0

    def _take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise DecodeError("__consumer_offsets record ends early")
        view = self.buf[self.pos : self.pos + n]
        self.pos += n
        return view

    def i16(self) -> int:
        return _I16.unpack(self._take(2))[0]

    def i32(self) -> int:
        return _I32.unpack(self._take(4))[0]

    def i64(self) -> int:
        return _I64.unpack(self._take(8))[0]

    def string(self) -> str | None:
        n = self.i16()
        if n == -1:
            return None
        try:
            return bytes(self._take(n)).decode("utf-8")
        except UnicodeDecodeError as e:
            raise DecodeError("string in a __consumer_offsets record is not UTF-8") from e

    def bytes_(self) -> bytes | None:
        n = self.i32()
        return None if n == -1 else bytes(self._take(n))


def decode_key(key) -> OffsetKey | GroupKey | None:
    """None for key versions this broker does not know (newer Kafka record types): skip them."""
    r = _Reader(key)
    version = r.i16()
    if version in (0, 1):
        return OffsetKey(r.string() or "", r.string() or "", r.i32())
    if version == 2:
        return GroupKey(r.string() or "")
    return None


def decode_offset_value(data) -> OffsetValue:
    r = _Reader(data)
    version = r.i16()
    if version not in (0, 1, 2, 3):
        raise DecodeError(f"offset commit value version {version} is not supported")
    offset = r.i64()
    epoch = r.i32() if version >= 3 else -1
    metadata = r.string() or ""
    commit_ts = r.i64()
    expire_ts = r.i64() if version == 1 else -1
    return OffsetValue(offset, epoch, metadata, commit_ts, expire_ts)


def decode_group_value(data) -> GroupValue:
    r = _Reader(data)
    version = r.i16()
    if version not in (0, 1, 2, 3):
        raise DecodeError(f"group metadata value version {version} is not supported")
    protocol_type = r.string() or ""
    generation = r.i32()
    protocol = r.string()
    leader = r.string()
    state_ts = r.i64() if version >= 2 else -1
    count = r.i32()
    if count < 0 or count > len(r.buf):
        raise DecodeError("bad member count in a group metadata value")
    members = []
    for _ in range(count):
        member_id = r.string() or ""
        instance_id = r.string() if version >= 3 else None
        client_id = r.string() or ""
        client_host = r.string() or ""
        rebalance_timeout = r.i32() if version >= 1 else -1
        session_timeout = r.i32()
        if rebalance_timeout < 0:
            rebalance_timeout = session_timeout
        subscription = r.bytes_() or b""
        assignment = r.bytes_() or b""
        members.append(MemberValue(member_id, instance_id, client_id, client_host, rebalance_timeout,
                                   session_timeout, subscription, assignment))
    return GroupValue(protocol_type, generation, protocol, leader, state_ts, members)
