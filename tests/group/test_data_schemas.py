"""The consumer protocol and __consumer_offsets layouts, declared once as data schemas and shared by the
coordinator and the client: bytes as Kafka lays them out, every version Kafka has, and no ApiVersions entry."""

import pytest

from kafkalite.group import records as rec
from kafkalite.group.coordinator import parse_subscription_topics
from kafkalite.protocol.codec import decode_data, encode_data
from kafkalite.protocol.errors import DecodeError
from kafkalite.protocol.messages import APIS_BY_NAME
from kafkalite.protocol.messages.data import consumer_offsets, consumer_protocol
from kafkalite_client.consumer_protocol import decode_assignment, decode_subscription


def i16(v):
    return v.to_bytes(2, "big", signed=True)


def i32(v):
    return v.to_bytes(4, "big", signed=True)


def i64(v):
    return v.to_bytes(8, "big", signed=True)


def string(s):
    return i16(-1) if s is None else i16(len(s)) + s.encode()


TOPICS = i32(2) + string("a") + string("b")
USER_DATA = i32(2) + b"ud"
OWNED = i32(1) + string("a") + i32(2) + i32(0) + i32(3)
SUBSCRIPTIONS = {
    0: i16(0) + TOPICS + USER_DATA,
    1: i16(1) + TOPICS + USER_DATA + OWNED,
    2: i16(2) + TOPICS + USER_DATA + OWNED + i32(7),
    3: i16(3) + TOPICS + USER_DATA + OWNED + i32(7) + string("rack-1"),
}


@pytest.mark.parametrize("version", range(4))
def test_subscription_every_version(version):
    data = SUBSCRIPTIONS[version]
    sub = decode_subscription(data)
    assert (sub.version, sub.topics, sub.user_data) == (version, ["a", "b"], b"ud")
    assert sub.owned_partitions == ({"a": [0, 3]} if version >= 1 else {})
    assert sub.generation_id == (7 if version >= 2 else -1)
    assert sub.rack_id == ("rack-1" if version >= 3 else None)
    assert parse_subscription_topics(data) == {"a", "b"}
    _, fields = decode_data(consumer_protocol.SUBSCRIPTION, data)
    assert encode_data(consumer_protocol.SUBSCRIPTION, version, fields) == data


def test_subscription_newer_versions_and_short_ones_are_still_read():
    newer = i16(9) + SUBSCRIPTIONS[3][2:] + b"fields of version 9"
    assert decode_subscription(newer).rack_id == "rack-1" and decode_subscription(newer).version == 9
    short_v1 = i16(1) + TOPICS + USER_DATA  # says v1 but stops where v1's field would begin
    assert decode_subscription(short_v1).topics == ["a", "b"]
    assert parse_subscription_topics(short_v1) == {"a", "b"}
    with pytest.raises(DecodeError):
        decode_data(consumer_protocol.SUBSCRIPTION, short_v1)  # the strict reader refuses it
    for bad in (b"", b"\x00", i16(0) + i32(5) + string("a"), i16(-1) + TOPICS + USER_DATA):
        assert parse_subscription_topics(bad) is None


def test_assignment_every_version():
    body = i32(1) + string("t") + i32(2) + i32(1) + i32(4) + i32(-1)
    for version in range(4):
        a = decode_assignment(i16(version) + body)
        assert (a.version, a.partitions, a.user_data) == (version, {"t": [1, 4]}, None)
    assert decode_assignment(i16(5) + body + b"later").partitions == {"t": [1, 4]}


def test_data_schemas_are_not_apis():
    for name in ("ConsumerProtocolSubscription", "ConsumerProtocolAssignment", "OffsetCommitKey",
                 "OffsetCommitValue", "GroupMetadataKey", "GroupMetadataValue"):
        assert name not in APIS_BY_NAME


# ------------------------------------------------------------ __consumer_offsets, every value version


def test_offset_commit_values_of_every_version():
    tail = string("m") + i64(1000)
    assert rec.decode_offset_value(i16(0) + i64(7) + tail) == rec.OffsetValue(7, -1, "m", 1000, -1)
    assert rec.decode_offset_value(i16(1) + i64(7) + tail + i64(2000)) == rec.OffsetValue(7, -1, "m", 1000, 2000)
    assert rec.decode_offset_value(i16(2) + i64(7) + tail) == rec.OffsetValue(7, -1, "m", 1000, -1)
    assert rec.decode_offset_value(i16(3) + i64(7) + i32(4) + tail) == rec.OffsetValue(7, 4, "m", 1000, -1)
    # v4 is flexible: compact string (length + 1) and an empty tag section
    v4 = i16(4) + i64(7) + i32(4) + b"\x02m" + i64(1000) + b"\x00"
    assert rec.decode_offset_value(v4) == rec.OffsetValue(7, 4, "m", 1000, -1)
    with pytest.raises(DecodeError):
        rec.decode_offset_value(i16(5) + i64(7) + i32(4) + tail)


def test_group_metadata_values_of_every_version():
    member_v0 = string("m1") + string("client") + string("/h") + i32(6000) + i32(1) + b"S" + i32(1) + b"A"
    v0 = i16(0) + string("consumer") + i32(3) + string("range") + string("m1") + i32(1) + member_v0
    expected = rec.GroupValue("consumer", 3, "range", "m1", -1,
                              [rec.MemberValue("m1", None, "client", "/h", 6000, 6000, b"S", b"A")])
    assert rec.decode_group_value(v0) == expected  # no rebalance timeout before v1: the session timeout serves
    member_v3 = (string("m1") + string("i1") + string("client") + string("/h") + i32(9000) + i32(6000)
                 + i32(1) + b"S" + i32(1) + b"A")
    v3 = i16(3) + string("consumer") + i32(3) + string("range") + string("m1") + i64(55) + i32(1) + member_v3
    assert rec.decode_group_value(v3) == rec.GroupValue(
        "consumer", 3, "range", "m1", 55, [rec.MemberValue("m1", "i1", "client", "/h", 9000, 6000, b"S", b"A")])
    assert rec.group_value(rec.decode_group_value(v3)) == v3  # what kafkalite writes, byte for byte
    fields = decode_data(consumer_offsets.GROUP_METADATA_VALUE, v3)[1]
    v4 = encode_data(consumer_offsets.GROUP_METADATA_VALUE, 4, fields)
    assert v4[2:] != v3[2:] and rec.decode_group_value(v4) == rec.decode_group_value(v3)  # v4 is flexible
