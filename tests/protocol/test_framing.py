"""FrameSplitter: any chunking of the stream gives the same frames; bad sizes fail before allocating."""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkalite.protocol.framing import DEFAULT_MAX_FRAME, FrameSplitter, FrameTooLarge

from .schema_values import EXAMPLES

FRAMES = [b"", b"a", b"hello world", bytes(range(256)) * 3, b"\x00\x00\x00\x05"]


def framed(payloads) -> bytes:
    return b"".join(struct.pack(">i", len(p)) + p for p in payloads)


def feed_chunks(splitter: FrameSplitter, chunks) -> list[bytes]:
    out = []
    for chunk in chunks:
        out += [bytes(f) for f in splitter.feed(chunk)]
    return out


def test_whole():
    splitter = FrameSplitter()
    assert feed_chunks(splitter, [framed(FRAMES)]) == FRAMES
    assert splitter.buffered == 0


def test_one_byte_at_a_time():
    stream = framed(FRAMES)
    splitter = FrameSplitter()
    assert feed_chunks(splitter, [stream[i : i + 1] for i in range(len(stream))]) == FRAMES
    assert splitter.buffered == 0


def test_trailing_partial_data_is_kept():
    stream = framed(FRAMES) + framed([b"partial frame"])[:-3]
    splitter = FrameSplitter()
    assert feed_chunks(splitter, [stream]) == FRAMES
    assert splitter.buffered == 4 + len(b"partial frame") - 3
    assert feed_chunks(splitter, [b"ame"]) == [b"partial frame"]
    assert splitter.buffered == 0


def test_partial_size_prefix():
    splitter = FrameSplitter()
    assert splitter.feed(b"\x00\x00") == []
    assert splitter.feed(b"\x00\x02a") == []
    assert [bytes(f) for f in splitter.feed(b"b")] == [b"ab"]


def test_single_frame_is_handed_over_without_a_copy_and_writable():
    splitter = FrameSplitter()
    (frame,) = splitter.feed(framed([b"abcd"]))
    assert isinstance(frame.obj, bytearray) and not frame.readonly
    frame[0] = ord("x")  # offsets are assigned in place
    assert bytes(frame) == b"xbcd"


def test_frames_stay_valid_after_more_data_arrives():
    splitter = FrameSplitter()
    first = splitter.feed(framed([b"one", b"two"]) + b"\x00")
    later = splitter.feed(b"\x00\x00\x05three")
    assert [bytes(f) for f in first + later] == [b"one", b"two", b"three"]


@settings(max_examples=EXAMPLES * 10, deadline=None, database=None)
@given(
    payloads=st.lists(st.binary(max_size=40), max_size=8),
    tail=st.binary(max_size=20),
    cuts=st.lists(st.integers(0, 400), max_size=12),
)
def test_random_chunkings(payloads, tail, cuts):
    stream = framed(payloads)
    partial = framed([tail])[: max(0, len(tail) + 3)]  # a frame missing its last byte
    stream += partial
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0] + points, points + [len(stream)])]
    splitter = FrameSplitter()
    assert feed_chunks(splitter, chunks) == payloads
    assert splitter.buffered == len(partial)


@pytest.mark.parametrize("size", [-1, -(1 << 31), DEFAULT_MAX_FRAME + 1, (1 << 31) - 1])
def test_bad_sizes_raise_before_allocating(size):
    splitter = FrameSplitter()
    tracemalloc.start()
    try:
        with pytest.raises(FrameTooLarge):
            splitter.feed(struct.pack(">i", size) + b"abc")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


def test_bad_size_after_good_frames_and_byte_by_byte():
    splitter = FrameSplitter(max_frame=10)
    assert [bytes(f) for f in splitter.feed(framed([b"ok"]))] == [b"ok"]
    for b in struct.pack(">i", 11)[:3]:
        assert splitter.feed(bytes([b])) == []
    with pytest.raises(FrameTooLarge):
        splitter.feed(b"\x0b")


def test_limit_is_inclusive():
    splitter = FrameSplitter(max_frame=4)
    assert [bytes(f) for f in splitter.feed(framed([b"four"]))] == [b"four"]


def test_large_frames_are_received_into_their_own_buffer_without_a_copy():
    splitter = FrameSplitter()
    payload = bytes(range(256)) * 1024  # 256 KiB: well above the scratch buffer
    stream = struct.pack(">i", len(payload)) + payload + struct.pack(">i", 3) + b"abc"
    frames = []
    handed_out = []
    pos = 0
    while pos < len(stream):
        buf = splitter.get_buffer(-1)
        handed_out.append(buf.obj)
        n = min(len(buf), 10_000, len(stream) - pos)  # a socket delivering 10 kB at a time
        buf[:n] = stream[pos : pos + n]
        pos += n
        frames.extend(splitter.buffer_updated(n))
    assert [bytes(f) for f in frames] == [payload, b"abc"]
    # The big frame is the very buffer the socket wrote into, not a copy of it.
    assert any(frames[0].obj is obj for obj in handed_out)
    assert splitter.buffered == 0
