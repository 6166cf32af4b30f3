"""Every API at every supported version, request and response: encode -> decode gives the values back
(with defaults for fields the version lacks) and decode -> encode gives the same bytes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafkalite.protocol import wire
from kafkalite.protocol.codec import message_codec, splice
from kafkalite.protocol.messages import APIS, APIS_BY_NAME
from kafkalite.protocol.primitives import uvarint_bytes
from kafkalite.protocol.record_batch import build_batch

from .schema_values import EXAMPLES, API_VERSION_IDS, API_VERSIONS, expected_decoded, message_strategy, normalize

SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

correlation_ids = st.integers(-(1 << 31), (1 << 31) - 1)
client_ids = st.none() | st.text(max_size=10)


def _fields(api, is_request):
    return api.request if is_request else api.response


def _encode(api, version, is_request, value) -> bytes:
    out = bytearray()
    splices: list = []
    message_codec(api, version, is_request).encode_into(out, splices, value)
    return wire.join(splice(out, splices))


def _check_codec(api, version, is_request, value):
    fields = _fields(api, is_request)
    encoded = _encode(api, version, is_request, value)
    decoded, end = message_codec(api, version, is_request).decode(encoded)
    assert end == len(encoded)
    assert normalize(decoded) == expected_decoded(fields, value, version)
    # Decoding then encoding reproduces the bytes exactly.
    assert _encode(api, version, is_request, decoded) == encoded


def _check_wire_request(api, version, value, correlation_id, client_id):
    frame = wire.join(wire.encode_request(api.key, version, correlation_id, client_id, value))
    (size,) = struct.unpack_from(">i", frame, 0)
    assert size == len(frame) - 4
    # Request header v1, plus an empty tag section (header v2) for flexible versions.
    cid = b"" if client_id is None else client_id.encode()
    header = struct.pack(">hhih", api.key, version, correlation_id, -1 if client_id is None else len(cid)) + cid
    if api.is_flexible(version):
        header += b"\x00"
    assert frame[4 : 4 + len(header)] == header
    body = message_codec(api, version, True).decode(frame, 4 + len(header))[0]
    assert normalize(body) == expected_decoded(api.request, value, version)

    head, decoded = wire.decode_request(memoryview(frame)[4:])
    assert (head.api_key, head.api_version, head.correlation_id, head.client_id) == (
        api.key, version, correlation_id, client_id,
    )
    assert normalize(decoded) == expected_decoded(api.request, value, version)


def _check_wire_response(api, version, value, correlation_id):
    frame = wire.join(wire.encode_response(api.key, version, correlation_id, value))
    assert struct.unpack_from(">ii", frame, 0) == (len(frame) - 4, correlation_id)
    # Response header v1 (a tag section) for flexible versions, except ApiVersions: always header v0.
    body_at = 8
    if api.is_flexible(version) and api.key != wire.API_VERSIONS_KEY:
        assert frame[8] == 0
        body_at = 9
    body, end = message_codec(api, version, False).decode(frame, body_at)
    assert end == len(frame)
    assert normalize(body) == expected_decoded(api.response, value, version)

    cid, decoded = wire.decode_response(api.key, version, memoryview(frame)[4:])
    assert cid == correlation_id
    assert normalize(decoded) == expected_decoded(api.response, value, version)


@pytest.mark.parametrize(("api", "version"), API_VERSIONS, ids=API_VERSION_IDS)
@SETTINGS
@given(data=st.data(), correlation_id=correlation_ids, client_id=client_ids)
def test_roundtrip(api, version, data, correlation_id, client_id):
    flexible = api.is_flexible(version)
    request = data.draw(message_strategy(api.request, version, flexible), label="request")
    response = data.draw(message_strategy(api.response, version, flexible), label="response")
    _check_codec(api, version, True, request)
    _check_codec(api, version, False, response)
    _check_wire_request(api, version, request, correlation_id, client_id)
    _check_wire_response(api, version, response, correlation_id)


def _tag_section(*tags: tuple[int, bytes]) -> bytes:
    out = uvarint_bytes(len(tags))
    for tag, payload in tags:
        out += uvarint_bytes(tag) + uvarint_bytes(len(payload)) + payload
    return out


def test_request_header_v2_skips_unknown_tags():
    api = APIS_BY_NAME["Heartbeat"]
    frame = bytearray(wire.join(wire.encode_request(api.key, 4, 9, "me", {"group_id": "g", "member_id": "m"})))
    header_end = 4 + 10 + 2
    assert frame[header_end] == 0
    frame[header_end : header_end + 1] = _tag_section((0, b"abc"), (5, b""))
    head, body = wire.decode_request(memoryview(frame)[4:])
    assert head.client_id == "me" and body["group_id"] == "g"


def test_response_header_v1_skips_unknown_tags():
    api = APIS_BY_NAME["Heartbeat"]
    frame = bytearray(wire.join(wire.encode_response(api.key, 4, 3, {"error_code": 27})))
    frame[8:9] = _tag_section((1, b"\x01\x02"))
    assert wire.decode_response(api.key, 4, memoryview(frame)[4:]) == (3, {"throttle_time_ms": 0, "error_code": 27})


@pytest.mark.parametrize("version", range(0, 5))
def test_api_versions_response_header_is_always_v0(version):
    api = APIS_BY_NAME["ApiVersions"]
    body = {"error_code": 0, "api_keys": [{"api_key": 0, "min_version": 3, "max_version": 10}]}
    frame = wire.join(wire.encode_response(api.key, version, 77, body))
    # The body starts right after the correlation id, even for the flexible versions 3 and 4.
    decoded, end = message_codec(api, version, False).decode(frame, 8)
    assert end == len(frame) and decoded["api_keys"] == body["api_keys"]
    assert frame[8:10] == b"\x00\x00"  # error_code follows the correlation id directly


def test_api_versions_v0_answer_to_an_unsupported_version():
    """The reply to an ApiVersions request above v4: v0 body format, error 35, the supported ranges."""
    api = APIS_BY_NAME["ApiVersions"]
    ranges = [{"api_key": a.key, "min_version": a.min_version, "max_version": a.max_version} for a in APIS.values()]
    frame = wire.join(wire.encode_response(api.key, 0, 5, {"error_code": 35, "api_keys": ranges}))
    cid, body = wire.decode_response(api.key, 0, memoryview(frame)[4:])
    assert cid == 5 and body["error_code"] == 35 and body["api_keys"] == ranges


def test_produce_records_are_not_copied():
    batch = build_batch([(b"k", b"v" * 1000)])
    api = APIS_BY_NAME["Produce"]
    body = {"acks": -1, "timeout_ms": 1000,
            "topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": batch}]}]}
    for version in (3, 9):
        frame = bytearray(wire.join(wire.encode_request(api.key, version, 1, "c", body))[4:])
        _, decoded = wire.decode_request(memoryview(frame))
        records = decoded["topic_data"][0]["partition_data"][0]["records"]
        assert isinstance(records, memoryview) and records.obj is frame and records == batch


def test_fetch_records_are_spliced_not_copied():
    stored = [build_batch([(None, b"a" * 100)]), bytearray(build_batch([(None, b"b" * 100)], base_offset=1))]
    api = APIS_BY_NAME["Fetch"]
    partition = {"partition_index": 0, "error_code": 0, "high_watermark": 2, "records": stored}
    for version in (4, 12):
        parts = wire.encode_response(api.key, version, 1, {"responses": [{"topic": "t", "partitions": [partition]}]})
        assert any(p is stored[0] for p in parts) and any(p is stored[1] for p in parts)
        _, decoded = wire.decode_response(api.key, version, memoryview(wire.join(parts))[4:])
        assert bytes(decoded["responses"][0]["partitions"][0]["records"]) == b"".join(map(bytes, stored))


@pytest.mark.parametrize("version", [4, 12])
def test_empty_fetch_partition_has_zero_length_records_not_null(version):
    api = APIS_BY_NAME["Fetch"]
    partition = {"partition_index": 0, "error_code": 0, "high_watermark": 0, "records": b""}
    frame = wire.join(wire.encode_response(api.key, version, 1,
                                           {"responses": [{"topic": "t", "partitions": [partition]}]}))
    decoded = wire.decode_response(api.key, version, memoryview(frame)[4:])[1]
    records = decoded["responses"][0]["partitions"][0]["records"]
    assert records is not None and len(records) == 0
