"""Whole requests and responses: headers plus bodies, for a broker and for a client.

Request header v1:  api_key int16, api_version int16, correlation_id int32, client_id nullable string (int16 length)
Request header v2:  the same, then a tagged-field section (client_id keeps its int16 length)
Response header v0: correlation_id int32
Response header v1: correlation_id int32, then a tagged-field section

Flexible versions use header v2 / v1. ApiVersions responses always use header v0, so that a client
can read the answer before it knows which versions the broker speaks.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kafkalite.protocol.api_keys import ApiKey
from kafkalite.protocol.codec import message_codec, splice
from kafkalite.protocol.errors import DecodeError
from kafkalite.protocol.messages import APIS
from kafkalite.protocol.primitives import read_uvarint
from kafkalite.protocol.schema import ApiSchema

API_VERSIONS_KEY = ApiKey.API_VERSIONS
METADATA_KEY = ApiKey.METADATA

_HEADER_FIXED = struct.Struct(">hhih")
_CORRELATION = struct.Struct(">i")
_SIZE = struct.Struct(">i")


class UnsupportedRequest(DecodeError):
    """An unknown API key or an unsupported version of an API other than ApiVersions."""

    def __init__(self, message: str, api_key: int, api_version: int, correlation_id: int):
        super().__init__(message)
        self.api_key = api_key
        self.api_version = api_version
        self.correlation_id = correlation_id


@dataclass(slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


def supports(api: ApiSchema, version: int) -> bool:
    return api.min_version <= version <= api.max_version


def decode_request_header(frame: memoryview) -> tuple[RequestHeader, ApiSchema | None, int]:
    """Parse a request header. Returns the header, the API's schema (None for an unsupported
    ApiVersions version, which still gets an answer) and where the body starts.
    Raises UnsupportedRequest for any other unknown key or version."""
    if len(frame) < _HEADER_FIXED.size:
        raise DecodeError("request shorter than its header")
    api_key, api_version, correlation_id, client_id_len = _HEADER_FIXED.unpack_from(frame, 0)
    pos = _HEADER_FIXED.size
    if client_id_len < -1 or pos + client_id_len > len(frame):
        raise DecodeError(f"bad client_id length {client_id_len}")
    client_id = None
    if client_id_len >= 0:
        try:
            client_id = str(frame[pos : pos + client_id_len], "utf-8")
        except UnicodeDecodeError as e:
            raise DecodeError("client_id is not UTF-8") from e
        pos += client_id_len
    header = RequestHeader(api_key, api_version, correlation_id, client_id)
    api = APIS.get(api_key)
    if api is None or not supports(api, api_version):
        if api_key == API_VERSIONS_KEY:
            return header, None, pos
        raise UnsupportedRequest(
            f"unsupported API key {api_key} version {api_version}", api_key, api_version, correlation_id
        )
    if api.is_flexible(api_version):
        pos = skip_tags(frame, pos)
    return header, api, pos


def skip_tags(buf, pos: int) -> int:
    """Skip a tagged-field section whose tags the header does not define."""
    count, pos = read_uvarint(buf, pos)
    last = -1
    for _ in range(count):
        tag, pos = read_uvarint(buf, pos)
        if tag <= last:
            raise DecodeError("header tags out of order or repeated")
        last = tag
        size, pos = read_uvarint(buf, pos)
        if size > len(buf) - pos:
            raise DecodeError("header tagged field runs past the end")
        pos += size
    return pos


def decode_request(frame: memoryview) -> tuple[RequestHeader, dict | None]:
    """Decode a whole request frame (without its size prefix). The body is None for an
    ApiVersions request of an unsupported version. Trailing bytes are an error, except librdkafka's
    padded all-topics Metadata request (see _librdkafka_padded_all_topics)."""
    header, api, pos = decode_request_header(frame)
    if api is None:
        return header, None
    body, end = message_codec(api, header.api_version, True).decode(frame, pos)
    if end != len(frame):
        if _librdkafka_padded_all_topics(header, frame, pos, end):
            # Decode it as librdkafka meant it: the padding removed.
            unpadded = memoryview(bytes(frame[: pos + 1]) + bytes(frame[pos + 4 :]))
            unpadded_body, unpadded_end = message_codec(api, header.api_version, True).decode(unpadded, pos)
            if unpadded_end == len(unpadded):
                return header, unpadded_body
        raise DecodeError(f"{len(frame) - end} trailing bytes after {api.name} request")
    return header, body


def _librdkafka_padded_all_topics(header: RequestHeader, frame: memoryview, body_start: int, end: int) -> bool:
    """librdkafka (confluent-kafka 2.x; librdkafka issue #5049) asks flexible Metadata for all topics with a
    4-byte slot reserved for the topics count, where only the 1-byte varint 0 (null) is written: three zero
    bytes follow it and the request is 3 bytes too long. Kafka ignores trailing bytes, so the request works
    there; only this exact shape is accepted here, every other trailing byte still closes the connection."""
    return (
        header.api_key == METADATA_KEY
        and APIS[METADATA_KEY].is_flexible(header.api_version)
        and len(frame) - end == 3
        and bytes(frame[body_start : body_start + 4]) == b"\0\0\0\0"
    )


def _framed(out: bytearray, splices: list) -> list:
    """Fill in the size prefix reserved at out[0:4] and return the buffers to send."""
    parts = splice(out, splices)
    total = sum(len(p) for p in parts) - 4
    _SIZE.pack_into(out, 0, total)
    return parts


def encode_response(api_key: int, version: int, correlation_id: int, body: dict) -> list:
    """A whole response frame, size prefix included, as buffers for writelines()."""
    api = APIS[api_key]
    out = bytearray(8)
    _CORRELATION.pack_into(out, 4, correlation_id)
    if api.is_flexible(version) and api_key != API_VERSIONS_KEY:
        out.append(0)  # response header v1: empty tag section
    splices: list = []
    message_codec(api, version, False).encode_into(out, splices, body)
    return _framed(out, splices)


def encode_request(api_key: int, version: int, correlation_id: int, client_id: str | None, body: dict) -> list:
    api = APIS[api_key]
    out = bytearray(4)
    cid = None if client_id is None else client_id.encode("utf-8")
    out += _HEADER_FIXED.pack(api_key, version, correlation_id, -1 if cid is None else len(cid))
    if cid:
        out += cid
    if api.is_flexible(version):
        out.append(0)
    splices: list = []
    message_codec(api, version, True).encode_into(out, splices, body)
    return _framed(out, splices)


def decode_response(api_key: int, version: int, frame: memoryview) -> tuple[int, dict]:
    """Decode a response frame (without its size prefix): (correlation_id, body)."""
    api = APIS[api_key]
    if len(frame) < 4:
        raise DecodeError("response shorter than its header")
    (correlation_id,) = _CORRELATION.unpack_from(frame, 0)
    pos = 4
    if api.is_flexible(version) and api_key != API_VERSIONS_KEY:
        pos = skip_tags(frame, pos)
    body, end = message_codec(api, version, False).decode(frame, pos)
    if end != len(frame):
        raise DecodeError(f"{len(frame) - end} trailing bytes after {api.name} response")
    return correlation_id, body


def join(parts: list) -> bytes:
    """The buffers of an encoded frame as one bytes object (for tests and tools, not the hot path)."""
    return b"".join(bytes(p) for p in parts)


def records_fields(message):
    """Every non-null `records` field anywhere in a decoded message (Produce requests, Fetch responses)."""
    if isinstance(message, dict):
        for key, item in message.items():
            if key == "records":
                if item is not None:
                    yield item
            else:
                yield from records_fields(item)
    elif isinstance(message, list):
        for item in message:
            yield from records_fields(item)
