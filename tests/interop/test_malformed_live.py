"""docs/reliability.md's malformed-input table against the live server over a raw socket: each case gets
the right error or a closed connection, and the broker keeps serving others with data intact."""

from __future__ import annotations

import struct
import time

import pytest

from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.record_batch import CONTROL_BIT, build_batch
from rawclient import RawClient

pytestmark = pytest.mark.interop

TOPIC = "victim"


def produce_body(batch: bytes | None, acks: int = -1, topic: str = TOPIC, partition: int = 0) -> dict:
    return {"transactional_id": None, "acks": acks, "timeout_ms": 5000,
            "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": batch}]}]}


def produce_error(client: RawClient, batch: bytes | None, acks: int = -1, version: int = 9) -> int:
    response = client.request("Produce", version, produce_body(batch, acks))
    return response["responses"][0]["partition_responses"][0]["error_code"]


def fetch_values(port: int) -> list[bytes]:
    from kafkalite.protocol.record_batch import iter_batches

    with RawClient(port) as client:
        response = client.request("Fetch", 12, {
            "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20, "isolation_level": 0,
            "topics": [{"topic": TOPIC, "partitions": [{"partition": 0, "fetch_offset": 0,
                                                        "partition_max_bytes": 1 << 20}]}]})
    records = response["responses"][0]["partitions"][0]["records"]
    return [r.value for b in iter_batches(records) for r in b.records()]


@pytest.fixture
def victim(broker_process):
    """A broker with a topic holding known data; checked intact after the test."""
    with RawClient(broker_process.port) as client:
        created = client.request("CreateTopics", 7, {"topics": [{
            "name": TOPIC, "num_partitions": 1, "replication_factor": 1, "assignments": [],
            "configs": [{"name": "message.timestamp.difference.max.ms", "value": "3600000"},
                        {"name": "max.message.bytes", "value": "100000"}]}], "timeout_ms": 5000})
        assert created["topics"][0]["error_code"] == 0
        now = int(time.time() * 1000)
        assert produce_error(client, build_batch([(b"k", b"before")], timestamps=now)) == 0
    yield broker_process
    assert fetch_values(broker_process.port) == [b"before"], "data written before was harmed"


def still_serves(port: int) -> None:
    with RawClient(port) as other:
        meta = other.request("Metadata", 12, {"topics": None, "allow_auto_topic_creation": False,
                                              "include_topic_authorized_operations": False})
        assert meta["brokers"][0]["port"] == port


CLOSE_CASES = {
    "negative frame length": struct.pack(">i", -5),
    "frame above socket.request.max.bytes": struct.pack(">i", 104857601),
    "unknown API key": struct.pack(">ihhih", 8, 999, 0, 1, -1),
    "unsupported Produce version": struct.pack(">ihhih", 10, 0, 2, 1, -1),
    "truncated body": struct.pack(">ihhih", 10, 3, 12, 1, -1),  # Metadata v12 with no body
    "huge array count": struct.pack(">ihhihbI", 15, 3, 8, 1, -1, 0, 0x7FFFFFFF)[:4 + 15],
}


@pytest.mark.parametrize("case", sorted(CLOSE_CASES))
def test_bad_frames_close_the_connection(victim, case):
    with RawClient(victim.port, timeout=5) as client:
        client.send_frame(CLOSE_CASES[case])
        assert client.is_closed_by_peer()
    still_serves(victim.port)


def test_trailing_garbage_closes(victim):
    with RawClient(victim.port, timeout=5) as client:
        frame = client.encode("Metadata", 4, {"topics": [], "allow_auto_topic_creation": False})
        garbage = frame[4:] + b"\x00\x01"
        client.send_frame(struct.pack(">i", len(garbage)) + garbage)
        assert client.is_closed_by_peer()
    still_serves(victim.port)


def test_huge_array_count_v1(victim):
    # Metadata v1 (non-flexible): topics array claiming 2^31-1 entries in a 4-byte body.
    with RawClient(victim.port, timeout=5) as client:
        body = struct.pack(">hhih", 3, 1, 7, -1) + struct.pack(">i", 0x7FFFFFFF)
        client.send_frame(struct.pack(">i", len(body)) + body)
        assert client.is_closed_by_peer()
    still_serves(victim.port)


def test_api_versions_unsupported_version_answers_and_keeps_the_connection(victim):
    with RawClient(victim.port) as client:
        body = struct.pack(">hhih", 18, 99, 42, -1)
        client.send_frame(struct.pack(">i", len(body)) + body)
        frame = client.read_frame()
        assert frame is not None
        correlation_id, error_code = struct.unpack_from(">ih", frame, 0)
        assert (correlation_id, error_code) == (42, ErrorCode.UNSUPPORTED_VERSION)
        # The v0 body lists the ranges; the connection still answers.
        response = client.request("ApiVersions", 3, {"client_software_name": "raw", "client_software_version": "1"})
        assert response["error_code"] == 0
        assert {k["api_key"] for k in response["api_keys"]} >= {0, 1, 3, 18}


def now_ms() -> int:
    return int(time.time() * 1000)


def corrupt_crc(batch: bytes) -> bytes:
    data = bytearray(batch)
    data[-1] ^= 0xFF
    return bytes(data)


def with_base_offset(batch: bytes, base: int) -> bytes:
    return struct.pack(">q", base) + batch[8:]


def with_count(batch: bytes, count: int) -> bytes:
    # recordsCount sits inside the CRC: recompute it so only the count is wrong.
    from kafkalite.protocol.record_batch import CRC_START, crc32c

    data = bytearray(batch)
    struct.pack_into(">i", data, 57, count)
    struct.pack_into(">I", data, 17, crc32c(bytes(data[CRC_START:])))
    return bytes(data)


@pytest.mark.parametrize("name,make,code", [
    ("CRC mismatch", lambda: corrupt_crc(build_batch([(None, b"x")], timestamps=now_ms())), ErrorCode.CORRUPT_MESSAGE),
    ("shorter than 61 bytes", lambda: build_batch([(None, b"x")], timestamps=now_ms())[:40], ErrorCode.CORRUPT_MESSAGE),
    ("larger than max.message.bytes", lambda: build_batch([(None, b"x" * 200_000)], timestamps=now_ms()),
     ErrorCode.MESSAGE_TOO_LARGE),
    ("baseOffset not 0", lambda: with_base_offset(build_batch([(None, b"x")], timestamps=now_ms()), 5),
     ErrorCode.INVALID_RECORD),
    ("count not lastOffsetDelta + 1", lambda: with_count(build_batch([(None, b"x")], timestamps=now_ms()), 3),
     ErrorCode.INVALID_RECORD),
    ("control batch", lambda: build_batch([(b"\x00\x00\x00\x00", b"")], timestamps=now_ms(), attributes=CONTROL_BIT),
     ErrorCode.INVALID_RECORD),
    ("timestamp far in the past", lambda: build_batch([(None, b"x")], timestamps=now_ms() - 86_400_000),
     ErrorCode.INVALID_TIMESTAMP),
    ("no batch", lambda: b"", ErrorCode.INVALID_RECORD),
])
def test_bad_batches_get_their_error_code(victim, name, make, code):
    with RawClient(victim.port) as client:
        assert produce_error(client, make()) == code, name


def test_bad_acks(victim):
    with RawClient(victim.port) as client:
        assert produce_error(client, build_batch([(None, b"x")], timestamps=now_ms()), acks=2) == \
            ErrorCode.INVALID_REQUIRED_ACKS


def test_idempotent_sequences(victim):
    with RawClient(victim.port) as client:
        client.request("Metadata", 12, {"topics": [{"name": "idem"}],
                                        "allow_auto_topic_creation": True,
                                        "include_topic_authorized_operations": False})
        init = client.request("InitProducerId", 4, {"transactional_id": None, "transaction_timeout_ms": -1,
                                                     "producer_id": -1, "producer_epoch": -1})
        pid, epoch = init["producer_id"], init["producer_epoch"]

        def produce(seq: int, value: bytes) -> dict:
            batch = build_batch([(None, value)], timestamps=now_ms(), producer_id=pid, producer_epoch=epoch,
                                base_sequence=seq)
            response = client.request("Produce", 9, produce_body(batch, topic="idem"))
            return response["responses"][0]["partition_responses"][0]

        first = produce(0, b"idem-0")
        assert first["error_code"] == 0
        second = produce(1, b"idem-1")
        duplicate = produce(0, b"idem-0")
        assert (duplicate["error_code"], duplicate["base_offset"]) == (0, first["base_offset"])
        assert produce(5, b"gap")["error_code"] == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce(2, b"idem-2")["base_offset"] == second["base_offset"] + 1


def test_invalid_topic_names(victim):
    with RawClient(victim.port) as client:
        for name in ["", ".", "..", "a" * 250, "bad/name", "spaces here"]:
            response = client.request("CreateTopics", 7, {"topics": [{
                "name": name, "num_partitions": 1, "replication_factor": 1, "assignments": [], "configs": []}],
                "timeout_ms": 5000})
            assert response["topics"][0]["error_code"] == ErrorCode.INVALID_TOPIC_EXCEPTION, name
