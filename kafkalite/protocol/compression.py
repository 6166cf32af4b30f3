"""Record batch compression codecs: gzip, snappy (raw, and xerial-framed on read), lz4 (frame format), zstd."""

from __future__ import annotations

import gzip
import struct
import zlib

import lz4.frame
import snappy
import zstandard

from kafkalite.protocol.errors import DecodeError
from kafkalite.protocol.primitives import read_uvarint

NONE, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4
NAMES = {NONE: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}
BY_NAME = {name: codec for codec, name in NAMES.items()}

# Decompressed batches are bounded so that a small compressed batch cannot claim gigabytes.
MAX_DECOMPRESSED = 256 * 1024 * 1024

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = 16  # magic, then int32 version and int32 compatible version
_BLOCK_LEN = struct.Struct(">i")

_zstd_compressor = zstandard.ZstdCompressor()
_zstd_decompressor = zstandard.ZstdDecompressor()


def compress(codec: int, data: bytes) -> bytes:
    if codec == GZIP:
        return gzip.compress(data, compresslevel=6, mtime=0)
    if codec == SNAPPY:
        return snappy.compress(data)
    if codec == LZ4:
        return lz4.frame.compress(data)
    if codec == ZSTD:
        return _zstd_compressor.compress(data)
    raise ValueError(f"unknown compression codec {codec}")


def decompress(codec: int, data) -> bytes:
    """Decompress a batch's records; any failure is a DecodeError."""
    try:
        if codec == GZIP:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = d.decompress(data, MAX_DECOMPRESSED)
            if d.unconsumed_tail:
                raise DecodeError("gzip batch decompresses past the size limit")
            if not d.eof:
                raise DecodeError("gzip data is truncated")
            return out
        if codec == SNAPPY:
            return _snappy_decompress(bytes(data))
        if codec == LZ4:
            return _lz4_decompress(data)
        if codec == ZSTD:
            return _zstd_decompress(data)
    except DecodeError:
        raise
    except Exception as e:  # each library raises its own types
        raise DecodeError(f"{NAMES.get(codec, codec)} data does not decompress: {e}") from e
    raise DecodeError(f"unknown compression codec {codec}")


_CHUNK = 1 << 20


def _zstd_decompress(data) -> bytes:
    # Not decompress(max_output_size=...): that allocates the whole limit up front when the frame
    # does not state its size, and ignores the limit when it does.
    if zstandard.frame_content_size(data) > MAX_DECOMPRESSED:
        raise DecodeError("zstd batch claims more than the size limit")
    out = bytearray()
    with _zstd_decompressor.stream_reader(data, read_across_frames=True) as reader:
        while chunk := reader.read(_CHUNK):
            out += chunk
            if len(out) > MAX_DECOMPRESSED:
                raise DecodeError("zstd batch decompresses past the size limit")
    return bytes(out)


def _lz4_decompress(data) -> bytes:
    # In bounded steps: given a large max_length, the decompressor allocates all of it up front.
    d = lz4.frame.LZ4FrameDecompressor()
    out = bytearray(d.decompress(data, max_length=_CHUNK))
    while not d.eof and not d.needs_input:
        if len(out) > MAX_DECOMPRESSED:
            raise DecodeError("lz4 batch decompresses past the size limit")
        out += d.decompress(b"", max_length=_CHUNK)
    if len(out) > MAX_DECOMPRESSED:
        raise DecodeError("lz4 batch decompresses past the size limit")
    if not d.eof:
        raise DecodeError("lz4 frame is truncated")
    return bytes(out)


def _snappy_raw(block: bytes, budget: int) -> bytes:
    """Raw snappy, checking the length its preamble states before the library allocates it."""
    try:
        size, _ = read_uvarint(block, 0)
    except DecodeError:
        raise DecodeError("snappy data has no valid length preamble") from None
    if size > budget:
        raise DecodeError("snappy batch decompresses past the size limit")
    return snappy.decompress(block)


def _snappy_decompress(data: bytes) -> bytes:
    if not data.startswith(_XERIAL_MAGIC):
        return _snappy_raw(data, MAX_DECOMPRESSED)
    # Xerial framing (Java snappy-java, kafka-python, aiokafka): blocks of int32 length + raw snappy.
    out = bytearray()
    pos = _XERIAL_HEADER
    while pos < len(data):
        if pos + 4 > len(data):
            raise DecodeError("truncated xerial snappy block length")
        (n,) = _BLOCK_LEN.unpack_from(data, pos)
        pos += 4
        if n < 0 or pos + n > len(data):
            raise DecodeError("xerial snappy block runs past the data")
        out += _snappy_raw(data[pos : pos + n], MAX_DECOMPRESSED - len(out))
        pos += n
    return bytes(out)
