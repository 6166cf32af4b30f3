"""Malformed input: every defect raises DecodeError (never another exception) and nothing is
allocated in proportion to a length or count the input claims."""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafkalite.protocol import wire
from kafkalite.protocol.codec import message_codec
from kafkalite.protocol.errors import DecodeError
from kafkalite.protocol.messages import APIS, APIS_BY_NAME
from kafkalite.protocol.primitives import uvarint_bytes
from kafkalite.protocol.record_batch import build_batch

from .schema_values import API_VERSION_IDS, API_VERSIONS, EXAMPLES, full_value, message_strategy

# Far below any claimed length tried here (up to 2^32): decoding must not grow with the claim.
MEMORY_LIMIT = 2 * 1024 * 1024

EXTREME_INT32 = [0x7FFFFFFF, -2, -(1 << 31), 0x40000000]
EXTREME_INT16 = [0x7FFF, -2, -(1 << 15)]
EXTREME_UVARINT = [uvarint_bytes((1 << 32) - 1), uvarint_bytes(1 << 31), b"\xff\xff\xff\xff\x7f", b"\x80\x80"]


class Measure:
    """Peak bytes Python allocates while the block runs (traced only inside it, to keep the rest fast)."""

    def __enter__(self):
        tracemalloc.start()
        return self

    def __exit__(self, *exc):
        self.peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return False


def request_frame(api, version, value=None) -> bytes:
    """A request frame without its size prefix."""
    value = full_value(api.request, version, api.is_flexible(version)) if value is None else value
    return wire.join(wire.encode_request(api.key, version, 7, "client", value))[4:]


def response_frame(api, version, value=None) -> bytes:
    value = full_value(api.response, version, api.is_flexible(version)) if value is None else value
    return wire.join(wire.encode_response(api.key, version, 7, value))[4:]


def decode_only_decode_error(decode, frame) -> None:
    try:
        decode(memoryview(frame))
    except DecodeError:
        pass


def _decoders(api, version):
    return [
        (request_frame(api, version), wire.decode_request),
        (response_frame(api, version), lambda f: wire.decode_response(api.key, version, f)),
    ]


# ------------------------------------------------------------------ exhaustive structural defects


@pytest.mark.parametrize(("api", "version"), API_VERSIONS, ids=API_VERSION_IDS)
def test_every_truncation_and_trailing_garbage(api, version):
    for frame, decode in _decoders(api, version):
        decode(memoryview(frame))  # the intact frame is fine
        for cut in range(len(frame)):
            with pytest.raises(DecodeError):
                decode(memoryview(frame[:cut]))
        for extra in (b"\x00", b"\xff" * 5):
            with pytest.raises(DecodeError):
                decode(memoryview(frame + extra))


@pytest.mark.parametrize(("api", "version"), API_VERSIONS, ids=API_VERSION_IDS)
def test_extreme_values_at_every_position(api, version):
    """Overwrite each position with huge or negative int16/int32/varint values: wherever a length or
    count sits, the claim is rejected without allocating for it."""
    for frame, decode in _decoders(api, version):
        with Measure() as m:
            for pos in range(len(frame)):
                for value in EXTREME_INT32:
                    if pos + 4 <= len(frame):
                        decode_only_decode_error(decode, frame[:pos] + struct.pack(">i", value) + frame[pos + 4 :])
                for value in EXTREME_INT16:
                    if pos + 2 <= len(frame):
                        decode_only_decode_error(decode, frame[:pos] + struct.pack(">h", value) + frame[pos + 2 :])
                for varint in EXTREME_UVARINT:
                    decode_only_decode_error(decode, frame[:pos] + varint + frame[pos + 1 :])
        assert m.peak < MEMORY_LIMIT


# ------------------------------------------------------------------ specific defects


def test_string_length_beyond_the_bytes_left():
    api = APIS_BY_NAME["Heartbeat"]
    frame = bytearray(request_frame(api, 0, {"group_id": "g", "generation_id": 1, "member_id": "m"}))
    body = 4 + 10 + 2  # header fixed part + client_id "client"
    frame[body : body + 2] = struct.pack(">h", 50)
    with pytest.raises(DecodeError, match="past the end"):
        wire.decode_request(memoryview(frame))


@pytest.mark.parametrize("length", [-2, -100, -(1 << 15)])
def test_negative_string_length_other_than_minus_one(length):
    api = APIS_BY_NAME["InitProducerId"]  # transactional_id: a nullable string
    frame = bytearray(request_frame(api, 0, {"transactional_id": None, "transaction_timeout_ms": 1}))
    body = 16
    assert frame[body : body + 2] == b"\xff\xff"
    frame[body : body + 2] = struct.pack(">h", length)
    with pytest.raises(DecodeError):
        wire.decode_request(memoryview(frame))
    # -1 is null, and only allowed where the field is nullable.
    heartbeat = bytearray(request_frame(APIS_BY_NAME["Heartbeat"], 0, {"group_id": "", "member_id": ""}))
    heartbeat[body : body + 2] = b"\xff\xff"
    with pytest.raises(DecodeError):
        wire.decode_request(memoryview(heartbeat))


def _produce_frame(version: int) -> tuple[bytearray, int]:
    """A Produce request and the position of its records length prefix."""
    api = APIS_BY_NAME["Produce"]
    batch = build_batch([(b"k", b"v")])
    body = {"acks": 1, "timeout_ms": 5,
            "topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": batch}]}]}
    frame = bytearray(request_frame(api, version, body))
    prefix = 1 if version >= 9 else 4
    at = frame.index(batch) - prefix
    return frame, at


@pytest.mark.parametrize("version", [3, 8])
@pytest.mark.parametrize("claim", [0x7FFFFFFF, -2, -(1 << 31)])
def test_records_length_claims(version, claim):
    frame, at = _produce_frame(version)
    frame[at : at + 4] = struct.pack(">i", claim)
    with Measure() as m, pytest.raises(DecodeError):
        wire.decode_request(memoryview(frame))
    assert m.peak < MEMORY_LIMIT


@pytest.mark.parametrize("version", [9, 10])
def test_compact_records_length_claiming_gigabytes(version):
    frame, at = _produce_frame(version)
    frame[at : at + 1] = uvarint_bytes((1 << 32) - 1)
    with Measure() as m, pytest.raises(DecodeError):
        wire.decode_request(memoryview(frame))
    assert m.peak < MEMORY_LIMIT


def test_array_count_of_2_31_minus_1():
    api = APIS_BY_NAME["DeleteGroups"]
    frame = bytearray(request_frame(api, 0, {"groups_names": ["a"]}))
    body = 16
    frame[body : body + 4] = struct.pack(">i", 0x7FFFFFFF)
    with Measure() as m, pytest.raises(DecodeError, match="exceeds the bytes left"):
        wire.decode_request(memoryview(frame))
    assert m.peak < MEMORY_LIMIT
    frame[body : body + 4] = struct.pack(">i", -2)
    with pytest.raises(DecodeError):
        wire.decode_request(memoryview(frame))


def test_compact_array_count_claiming_gigabytes():
    api = APIS_BY_NAME["DeleteGroups"]
    frame = bytearray(request_frame(api, 2, {"groups_names": ["a"]}))
    body = 17  # after the header's empty tag section
    assert frame[body] == 2  # compact count + 1
    frame[body : body + 1] = uvarint_bytes(0xFFFFFFFF)
    with Measure() as m, pytest.raises(DecodeError):
        wire.decode_request(memoryview(frame))
    assert m.peak < MEMORY_LIMIT


def _api_versions_v3_response(tags: bytes) -> bytes:
    api = APIS_BY_NAME["ApiVersions"]
    frame = response_frame(api, 3, {"error_code": 0, "api_keys": []})
    assert frame.endswith(b"\x00")  # the empty top-level tag section
    return frame[:-1] + tags


def test_known_tags_decode():
    # finalized_features_epoch is tag 1, an int64.
    cid, body = wire.decode_response(18, 3,
                                     memoryview(_api_versions_v3_response(b"\x01\x01\x08" + b"\x00" * 7 + b"\x05")))
    assert body["finalized_features_epoch"] == 5


@pytest.mark.parametrize(
    "tags",
    [
        b"\x01",  # a count of one, then nothing
        b"\x01\x01",  # a tag number, no size
        b"\x01\x01\x08\x00",  # size 8, one byte
        b"\x05",  # more tags than bytes
        b"\x02\x01\x08" + bytes(8) + b"\x01\x08" + bytes(8),  # tag 1 twice
        b"\x02\x03\x01\x00\x01\x08" + bytes(8),  # tag 3 before tag 1
        b"\x01\x01\x04\x00\x00\x00\x00",  # known tag, wrong size for an int64
        b"\x01\x01\x09" + bytes(9),  # known tag, size larger than its value
        b"\x01\x09\xff\xff\xff\xff\x0f",  # unknown tag claiming 4 GiB
    ],
)
def test_bad_tag_sections(tags):
    with Measure() as m, pytest.raises(DecodeError):
        wire.decode_response(18, 3, memoryview(_api_versions_v3_response(tags)))
    assert m.peak < MEMORY_LIMIT


def test_missing_request_header_tag_section():
    api = APIS_BY_NAME["Heartbeat"]
    frame = request_frame(api, 4, {"group_id": "g", "member_id": "m"})
    with pytest.raises(DecodeError):
        wire.decode_request(memoryview(frame[:16] + frame[17:]))


def test_truncated_header():
    frame = request_frame(APIS_BY_NAME["Heartbeat"], 0, {"group_id": "g", "member_id": "m"})
    for cut in range(16):
        with pytest.raises(DecodeError):
            wire.decode_request(memoryview(frame[:cut]))


def test_client_id_claims_more_than_the_frame():
    frame = bytearray(request_frame(APIS_BY_NAME["Heartbeat"], 0, {"group_id": "g", "member_id": "m"}))
    frame[8:10] = struct.pack(">h", 0x7FFF)
    with pytest.raises(DecodeError):
        wire.decode_request(memoryview(frame))
    frame[8:10] = struct.pack(">h", -2)
    with pytest.raises(DecodeError):
        wire.decode_request(memoryview(frame))


def test_invalid_utf8_string():
    frame = bytearray(request_frame(APIS_BY_NAME["Heartbeat"], 0, {"group_id": "g", "member_id": "m"}))
    frame[18] = 0xFF  # the "g" of group_id
    with pytest.raises(DecodeError):
        wire.decode_request(memoryview(frame))


# ------------------------------------------------------------------ unsupported requests


@pytest.mark.parametrize(("key", "version"), [(999, 0), (-1, 0), (0, 2), (0, 11), (1, 3), (1, 13), (3, 0), (47, 1)])
def test_unknown_key_or_unsupported_version(key, version):
    frame = struct.pack(">hhih", key, version, 1234, 2) + b"id" + b"\x00" * 8
    with pytest.raises(wire.UnsupportedRequest) as info:
        wire.decode_request(memoryview(frame))
    assert (info.value.api_key, info.value.api_version, info.value.correlation_id) == (key, version, 1234)
    assert isinstance(info.value, DecodeError)


@pytest.mark.parametrize("version", [5, 9, 0x7FFF, -1])
def test_api_versions_of_unsupported_version_is_answered(version):
    # Whatever the body holds (here a flexible-looking one), the header is enough to answer.
    frame = struct.pack(">hhih", 18, version, 42, -1) + b"\x00\x04kcat\x061.0.0\x00garbage"
    header, body = wire.decode_request(memoryview(frame))
    assert body is None
    assert (header.api_key, header.api_version, header.correlation_id, header.client_id) == (18, version, 42, None)


# ------------------------------------------------------------------ fuzz


def _mutate(data, frame: bytes) -> bytes:
    kind = data.draw(st.sampled_from(["flip", "truncate", "extreme", "splice", "random_body"]))
    out = bytearray(frame)
    if kind == "flip":
        for pos in data.draw(st.lists(st.integers(0, len(out) * 8 - 1), min_size=1, max_size=4)):
            out[pos // 8] ^= 1 << (pos % 8)
    elif kind == "truncate":
        del out[data.draw(st.integers(0, max(0, len(out) - 1))) :]
    elif kind == "extreme":
        pos = data.draw(st.integers(0, len(out)))
        value = data.draw(
            st.sampled_from([struct.pack(">i", v) for v in EXTREME_INT32]
                            + [struct.pack(">h", v) for v in EXTREME_INT16] + EXTREME_UVARINT)
        )
        out[pos : pos + len(value)] = value
    elif kind == "splice":
        pos = data.draw(st.integers(0, len(out)))
        out[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
    else:
        keep = data.draw(st.integers(0, min(len(out), 20)))
        out[keep:] = data.draw(st.binary(max_size=200))
    return bytes(out)


@settings(max_examples=EXAMPLES * 20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), index=st.integers(0, len(API_VERSIONS) - 1), is_request=st.booleans())
def test_fuzz_mutated_frames(data, index, is_request):
    api, version = API_VERSIONS[index]
    flexible = api.is_flexible(version)
    if is_request:
        value = data.draw(message_strategy(api.request, version, flexible))
        frame = request_frame(api, version, value)
        decode = wire.decode_request
    else:
        value = data.draw(message_strategy(api.response, version, flexible))
        frame = response_frame(api, version, value)
        decode = lambda f: wire.decode_response(api.key, version, f)  # noqa: E731
    mutated = _mutate(data, frame)
    with Measure() as m:
        decode_only_decode_error(decode, mutated)
    assert m.peak < MEMORY_LIMIT


@settings(max_examples=EXAMPLES * 20, deadline=None, database=None)
@given(frame=st.binary(max_size=300), key=st.sampled_from(sorted(APIS)), version=st.integers(-1, 15))
def test_fuzz_random_bodies(frame, key, version):
    api = APIS[key]
    request = struct.pack(">hhih", key, version, 1, -1) + frame
    with Measure() as m:
        decode_only_decode_error(wire.decode_request, request)
        if api.min_version <= version <= api.max_version:
            decode_only_decode_error(lambda f: wire.decode_response(key, version, f), frame)
            decode_only_decode_error(lambda f: message_codec(api, version, True).decode(f), frame)
    assert m.peak < MEMORY_LIMIT


def test_measure_sees_an_allocation():
    with Measure() as m:
        blob = bytearray(4 * MEMORY_LIMIT)
    del blob
    assert m.peak >= 4 * MEMORY_LIMIT
