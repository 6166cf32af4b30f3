"""RELIABILITY.md's malformed-input table, sent to both brokers: both close the connection, or both answer the
same error. Frame-level cases go over a fresh connection each; batch-level cases are Produce requests."""

from __future__ import annotations

import struct
import time

import pytest

from diff_harness import (
    CLOSED, NO_ANSWER, create_topic_body, fetch_body, produce_body, produce_without_error_details, wait_for_topic,
)
from kafkalite.protocol import wire
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.messages import APIS_BY_NAME
from kafkalite.protocol.record_batch import CONTROL_BIT, CRC_START, build_batch, crc32c


def header(api_key: int, version: int, correlation_id: int = 7, flexible: bool = False) -> bytes:
    return struct.pack(">hhih", api_key, version, correlation_id, -1) + (b"\x00" if flexible else b"")


def framed(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def request_bytes(api: str, version: int, body: dict) -> bytes:
    """A whole request frame without its size prefix."""
    return wire.join(wire.encode_request(APIS_BY_NAME[api].key, version, 7, None, body))[4:]


METADATA_V12_EMPTY = request_bytes("Metadata", 12, {"topics": [], "allow_auto_topic_creation": False,
                                                    "include_topic_authorized_operations": False})
METADATA_V4_EMPTY = request_bytes("Metadata", 4, {"topics": [], "allow_auto_topic_creation": False})

FRAMES = {
    "negative frame length": struct.pack(">i", -5),
    "frame above socket.request.max.bytes": struct.pack(">i", 104857601),
    "unknown API key": framed(header(999, 0)),
    "unsupported Metadata version": framed(header(3, 99)),
    "Produce v2 (advertised from v0, served from v3)": framed(header(0, 2) + struct.pack(">hii", 1, 1000, 0)),
    "truncated body": framed(header(3, 12, flexible=True)),
    "truncated header": framed(struct.pack(">hh", 3, 4)),
    "missing header tag buffer": framed(header(3, 12) + METADATA_V12_EMPTY[10 + 1:]),
    "bad compact length (topics count claims 2^30)":
        framed(header(3, 12, flexible=True) + b"\x80\x80\x80\x80\x04" + b"\x00\x00\x00"),
    "array count of 2^31-1 in a 4-byte body": framed(header(3, 1) + struct.pack(">i", 0x7FFFFFFF)),
    "string length beyond the bytes left": framed(header(3, 4) + struct.pack(">ih", 1, 1000) + b"ab"),
    "negative string length other than -1": framed(header(3, 4) + struct.pack(">ih", 1, -5) + b"\x00"),
}


# Kept differences (protocol.md): inputs Kafka parses leniently and kafkalite refuses by closing.
LENIENT_IN_KAFKA = {
    "trailing bytes after the last field": framed(METADATA_V4_EMPTY + b"\x00\x01"),
    # Kafka reads the count as a 32-bit int: 2^32-1 wraps to -1, which is a null array (all topics).
    "compact array count of 2^32-1": framed(header(3, 12, flexible=True) + b"\xff\xff\xff\xff\x0f" + b"\x00\x00\x00"),
    "unordered header tags": framed(header(3, 12) + b"\x02\x05\x00\x01\x00" + METADATA_V12_EMPTY[11:]),
    "repeated header tags": framed(header(3, 12) + b"\x02\x01\x00\x01\x00" + METADATA_V12_EMPTY[11:]),
}


def outcome(side, frame: bytes):
    """CLOSED, or the first answer frame decoded as far as its header and error code go."""
    answer = side.raw(frame)
    if not isinstance(answer, bytes):
        return answer
    return ("answered", struct.unpack_from(">i", answer, 0)[0])


@pytest.mark.parametrize("case", sorted(FRAMES))
def test_bad_frames(pair, case):
    for side in pair.sides:
        side.timeout = 5.0
    kafka, kafkalite = (outcome(side, FRAMES[case]) for side in pair.sides)
    assert (case, kafka) == (case, kafkalite)


@pytest.mark.parametrize("case", sorted(LENIENT_IN_KAFKA))
def test_inputs_kafka_accepts_and_kafkalite_refuses(pair, case):
    kafka, kafkalite = (outcome(side, LENIENT_IN_KAFKA[case]) for side in pair.sides)
    assert (kafka, kafkalite) == (("answered", 7), CLOSED)


def test_api_versions_of_an_unsupported_version_is_answered_and_the_connection_kept(pair):
    # A client sends a version it does not know the broker has with request header v2 (ApiVersions v3+ is flexible).
    body = b"\x05diff\x041.0\x00"  # client_software_name, client_software_version, no tags
    frame = framed(header(18, 99, flexible=True) + body)
    for side in pair.sides:
        side.connect()
        side.send_frame(frame)
        answer = side.read_frame()
        assert answer != CLOSED, side.name
        correlation_id, error_code = struct.unpack_from(">ih", answer, 0)
        assert (correlation_id, error_code) == (7, ErrorCode.UNSUPPORTED_VERSION), side.name
        # The v0 body lists the supported ranges: ApiVersions among them.
        _, body = wire.decode_response(18, 0, memoryview(answer))
        assert any(k["api_key"] == 18 for k in body["api_keys"]), side.name
    # The same connection still answers (the ranges differ by design: test_every_version compares them).
    assert [a["error_code"] for a in pair.both("ApiVersions", 0, {})] == [0, 0]


# ---------------------------------------------------------------- record batches


def now_ms() -> int:
    return int(time.time() * 1000)


def corrupt_crc(batch: bytes) -> bytes:
    return batch[:-1] + bytes([batch[-1] ^ 0xFF])


def with_count(batch: bytes, count: int) -> bytes:
    data = bytearray(batch)
    struct.pack_into(">i", data, 57, count)
    struct.pack_into(">I", data, 17, crc32c(bytes(data[CRC_START:])))
    return bytes(data)


BATCHES = {
    "CRC mismatch": lambda: corrupt_crc(build_batch([(None, b"x")], timestamps=now_ms())),
    "shorter than 61 bytes": lambda: build_batch([(None, b"x")], timestamps=now_ms())[:40],
    "larger than max.message.bytes": lambda: build_batch([(None, b"x" * 200_000)], timestamps=now_ms()),
    "baseOffset not 0": lambda: struct.pack(">q", 5) + build_batch([(None, b"x")], timestamps=now_ms())[8:],
    "count not lastOffsetDelta + 1": lambda: with_count(build_batch([(None, b"x")], timestamps=now_ms()), 3),
    "control batch": lambda: build_batch([(b"\x00\x00\x00\x00", b"")], timestamps=now_ms(),
                                         attributes=CONTROL_BIT),
    "timestamp two hours in the past": lambda: build_batch([(None, b"x")], timestamps=now_ms() - 7_200_000),
    "timestamp two hours in the future": lambda: build_batch([(None, b"x")], timestamps=now_ms() + 7_200_000),
    "no batch": lambda: b"",
    "null records": lambda: None,
}


@pytest.fixture
def victim(pair, names):
    """A topic holding one record, with limits small enough to test; checked intact after the test."""
    topic = names()
    pair.same("CreateTopics", 7, create_topic_body(topic, 1, {
        "message.timestamp.before.max.ms": "3600000", "max.message.bytes": "100000"}))
    for side in pair.sides:
        wait_for_topic(side, topic, 1)
    pair.same("Produce", 9, produce_body(topic, build_batch([(b"k", b"before")], timestamps=now_ms())))
    yield topic
    fetched = pair.same("Fetch", 12, fetch_body(topic, 0))
    values = [r[3] for b in fetched["responses"][0]["partitions"][0]["records"] for r in b["records"]]
    assert values == [b"before"], "data written before was harmed"


# Kept differences (protocol.md): case -> (Kafka's answer, kafkalite's).
BATCHES_THAT_DIFFER = {
    # A records field too short for the batch it starts: Kafka finds no batch in it (INVALID_RECORD); kafkalite
    # calls the batch corrupt, as RELIABILITY.md's table says.
    "shorter than 61 bytes": (ErrorCode.INVALID_RECORD, ErrorCode.CORRUPT_MESSAGE),
    # Null records: Kafka 4.1 never answers (its handler fails on the null); kafkalite answers INVALID_RECORD.
    "null records": (NO_ANSWER, ErrorCode.INVALID_RECORD),
}


@pytest.mark.parametrize("case", sorted(set(BATCHES) - set(BATCHES_THAT_DIFFER)))
def test_bad_batches(pair, victim, case):
    answer = pair.same("Produce", 9, produce_body(victim, BATCHES[case]()), normalize=produce_without_error_details)
    assert answer["responses"][0]["partition_responses"][0]["error_code"] != 0


@pytest.mark.parametrize("case", sorted(BATCHES_THAT_DIFFER))
def test_bad_batches_that_differ(pair, victim, case):
    for side in pair.sides:
        side.timeout = 3.0
    answers = pair.both("Produce", 9, produce_body(victim, BATCHES[case]()))
    codes = tuple(a if isinstance(a, str) else a["responses"][0]["partition_responses"][0]["error_code"]
                  for a in answers)
    assert codes == BATCHES_THAT_DIFFER[case]
    for side in pair.sides:
        side.timeout = 10.0


@pytest.mark.parametrize("acks", [2, -2, 100])
def test_bad_acks(pair, victim, acks):
    answer = pair.same("Produce", 9, produce_body(victim, build_batch([(None, b"x")], timestamps=now_ms()),
                                                  acks=acks))
    assert answer["responses"][0]["partition_responses"][0]["error_code"] == ErrorCode.INVALID_REQUIRED_ACKS


@pytest.mark.parametrize("name", ["", ".", "..", "a" * 250, "bad/name", "spaces here", "ünïcode", "a" * 249])
def test_topic_names(pair, name):
    answer = pair.same("CreateTopics", 7, create_topic_body(name, 1, validate_only=True))
    assert (name == "a" * 249) == (answer["topics"][0]["error_code"] == 0)


def test_metadata_with_invalid_and_unknown_topic_names(pair, names):
    answer = pair.same("Metadata", 12, {"topics": [{"name": n} for n in ("bad/name", "..", names("unknown"))],
                                        "allow_auto_topic_creation": False,
                                        "include_topic_authorized_operations": False})
    assert {t["error_code"] for t in answer["topics"]} <= {ErrorCode.INVALID_TOPIC_EXCEPTION,
                                                          ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}


def test_produce_to_unknown_topic_and_partition(pair, victim, names):
    record = build_batch([(None, b"x")], timestamps=now_ms())
    pair.same("Produce", 9, produce_body(names("unknown"), record))
    pair.same("Produce", 9, produce_body(victim, record, partition=3))
    pair.same("Produce", 9, produce_body(victim, record, partition=-1))

