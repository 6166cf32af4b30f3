"""Records of the internal topic `__consumer_offsets`: kafkalite's view of Kafka's layouts.

The layouts are declared once, as data schemas, in kafkalite.protocol.messages.data.consumer_offsets, and
encoded with the protocol codec. kafkalite writes offset commit keys of type 1, offset commit values of
version 3 and group metadata values of version 3; it reads every version Kafka has written.

The group's partition is abs(Java String.hashCode(group)) % offsets.topic.num.partitions, as in Kafka.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from kafkalite.protocol.codec import data_codec, decode_data, encode_data
from kafkalite.protocol.errors import DecodeError
from kafkalite.protocol.messages.data.consumer_offsets import (
    GROUP_METADATA_KEY,
    GROUP_METADATA_KEY_TYPE,
    GROUP_METADATA_VALUE,
    OFFSET_COMMIT_KEY,
    OFFSET_COMMIT_KEY_TYPES,
    OFFSET_COMMIT_VALUE,
)

OFFSET_KEY_VERSION = 1
GROUP_KEY_VERSION = GROUP_METADATA_KEY_TYPE
OFFSET_VALUE_VERSION = 3
GROUP_VALUE_VERSION = 3

_KEY_TYPE = struct.Struct(">h")


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


def _key(key_type: int, schema, fields: dict) -> bytes:
    out = bytearray(_KEY_TYPE.pack(key_type))
    data_codec(schema, 0).encode_into(out, [], fields)
    return bytes(out)


def offset_key(group_id: str, topic: str, partition: int) -> bytes:
    return _key(OFFSET_KEY_VERSION, OFFSET_COMMIT_KEY, {"group": group_id, "topic": topic, "partition": partition})


def group_key(group_id: str) -> bytes:
    return _key(GROUP_KEY_VERSION, GROUP_METADATA_KEY, {"group": group_id})


def offset_value(value: OffsetValue) -> bytes:
    return encode_data(OFFSET_COMMIT_VALUE, OFFSET_VALUE_VERSION, {
        "offset": value.offset, "leader_epoch": value.leader_epoch, "metadata": value.metadata,
        "commit_timestamp": value.commit_timestamp_ms, "expire_timestamp": value.expire_timestamp_ms,
    })


def group_value(value: GroupValue) -> bytes:
    return encode_data(GROUP_METADATA_VALUE, GROUP_VALUE_VERSION, {
        "protocol_type": value.protocol_type, "generation": value.generation_id, "protocol": value.protocol_name,
        "leader": value.leader_id, "current_state_timestamp": value.state_timestamp_ms,
        "members": [
            {"member_id": m.member_id, "group_instance_id": m.group_instance_id, "client_id": m.client_id,
             "client_host": m.client_host, "rebalance_timeout": m.rebalance_timeout_ms,
             "session_timeout": m.session_timeout_ms, "subscription": m.subscription, "assignment": m.assignment}
            for m in value.members
        ],
    })


# ---------------------------------------------------------------- reading


def decode_key(key) -> OffsetKey | GroupKey | None:
    """None for key types this broker does not know (newer Kafka record types): skip them."""
    view = key if isinstance(key, memoryview) else memoryview(key)
    if len(view) < 2:
        raise DecodeError("__consumer_offsets key without a type")
    (key_type,) = _KEY_TYPE.unpack_from(view, 0)
    if key_type in OFFSET_COMMIT_KEY_TYPES:
        k = data_codec(OFFSET_COMMIT_KEY, 0).decode(view, 2)[0]
        return OffsetKey(k["group"], k["topic"], k["partition"])
    if key_type == GROUP_METADATA_KEY_TYPE:
        return GroupKey(data_codec(GROUP_METADATA_KEY, 0).decode(view, 2)[0]["group"])
    return None


def decode_offset_value(data) -> OffsetValue:
    _, v = decode_data(OFFSET_COMMIT_VALUE, data)
    return OffsetValue(v["offset"], v["leader_epoch"], v["metadata"], v["commit_timestamp"], v["expire_timestamp"])


def decode_group_value(data) -> GroupValue:
    _, v = decode_data(GROUP_METADATA_VALUE, data)
    members = [
        MemberValue(m["member_id"], m["group_instance_id"], m["client_id"], m["client_host"],
                    # before version 1 there is no rebalance timeout: the session timeout serves
                    m["rebalance_timeout"] if m["rebalance_timeout"] >= 0 else m["session_timeout"],
                    m["session_timeout"], m["subscription"], m["assignment"])
        for m in v["members"]
    ]
    return GroupValue(v["protocol_type"], v["generation"], v["protocol"], v["leader"], v["current_state_timestamp"],
                      members)
