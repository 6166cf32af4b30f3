"""Wire primitives: fixed-width integers, zig-zag varints, unsigned varints, strings, bytes.

Readers take (buffer, position) and return (value, new position); they raise DecodeError when the
buffer ends early or a length is out of range, before allocating anything a length claims.
Writers append to a bytearray.
"""

from __future__ import annotations

import struct
import uuid

from kafkalite.protocol.errors import DecodeError

INT8 = struct.Struct(">b")
INT16 = struct.Struct(">h")
INT32 = struct.Struct(">i")
INT64 = struct.Struct(">q")
UINT16 = struct.Struct(">H")
UINT32 = struct.Struct(">I")
FLOAT64 = struct.Struct(">d")

ZERO_UUID = uuid.UUID(int=0)


def _read_unsigned(buf, pos: int, max_bytes: int, what: str) -> tuple[int, int]:
    """Unsigned LEB128 of at most max_bytes bytes."""
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise DecodeError(f"{what} runs past the end of the buffer")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 7 * max_bytes:
            raise DecodeError(f"{what} longer than {max_bytes} bytes")


def read_uvarint(buf, pos: int) -> tuple[int, int]:
    """Unsigned varint, at most 5 bytes (Kafka's unsigned varints are 32-bit)."""
    return _read_unsigned(buf, pos, 5, "varint")


def read_uvarlong(buf, pos: int) -> tuple[int, int]:
    return _read_unsigned(buf, pos, 10, "varlong")


def read_varint(buf, pos: int) -> tuple[int, int]:
    """Zig-zag signed varint (32-bit)."""
    n, pos = read_uvarint(buf, pos)
    return (n >> 1) ^ -(n & 1), pos


def read_varlong(buf, pos: int) -> tuple[int, int]:
    n, pos = read_uvarlong(buf, pos)
    return (n >> 1) ^ -(n & 1), pos


def write_uvarint(out: bytearray, n: int) -> None:
    if n < 0:
        raise ValueError("unsigned varint cannot be negative")
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def uvarint_bytes(n: int) -> bytes:
    out = bytearray()
    write_uvarint(out, n)
    return bytes(out)


def write_varint(out: bytearray, n: int) -> None:
    """Zig-zag signed varint; also used for varlongs (the encoding is the same, only the range differs)."""
    write_uvarint(out, (n << 1) ^ (n >> 63))
