"""Incremental frame splitting: feed bytes as they arrive, take whole size-prefixed frames."""

from __future__ import annotations

import struct

_SIZE = struct.Struct(">i")

# Kafka's socket.request.max.bytes.
DEFAULT_MAX_FRAME = 104857600


class FrameTooLarge(ValueError):
    """A frame's size prefix is negative or above the limit; the connection must close."""


class FrameSplitter:
    """Splits a byte stream into frames (the bytes after each int32 size prefix).

    The size is checked before anything is allocated for the frame. Frames are returned as
    writable memoryviews over a bytearray, so the broker can assign offsets in place.
    """

    __slots__ = ("max_frame", "_buf")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME):
        self.max_frame = max_frame
        self._buf = bytearray()

    def feed(self, data) -> list[memoryview]:
        """Add received bytes; return every frame now complete, in order."""
        buf = self._buf
        buf += data
        frames: list[memoryview] = []
        pos = 0  # start of the first frame not yet returned
        while len(buf) - pos >= 4:
            (size,) = _SIZE.unpack_from(buf, pos)
            if size < 0 or size > self.max_frame:
                raise FrameTooLarge(f"frame size {size} is outside 0..{self.max_frame}")
            end = pos + 4 + size
            if end > len(buf):
                break
            if pos == 0 and end == len(buf):
                # The usual case: the buffer holds exactly one frame. Hand it over without a copy.
                frames.append(memoryview(buf)[4:])
                self._buf = bytearray()
                return frames
            frames.append(memoryview(buf[pos + 4 : end]))  # a copy: the buffer lives on
            pos = end
        if pos:
            del buf[:pos]
        return frames

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned in a frame."""
        return len(self._buf)
