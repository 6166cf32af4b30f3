"""Incremental frame splitting: receive bytes as they arrive, take whole size-prefixed frames.

Two ways in, one splitter: `feed(data)` for bytes already received, or `get_buffer()` and
`buffer_updated(n)` for a socket that reads straight into the splitter's memory (asyncio's
BufferedProtocol). Small frames are gathered in a reusable scratch buffer and copied out; a large
frame (a Produce of a big batch) gets a buffer of its own that the socket fills directly. Up to 1 MiB
(Kafka's default batch limit) its bytes are never copied on their way in; beyond that the buffer
doubles as bytes arrive, so a size prefix alone cannot make the broker allocate what it claims.
"""

from __future__ import annotations

import struct

_SIZE = struct.Struct(">i")

# Kafka's socket.request.max.bytes.
DEFAULT_MAX_FRAME = 104857600
_SCRATCH = 64 * 1024
_OWN_BUFFER_ABOVE = _SCRATCH // 2  # frames larger than this are received into a buffer of their own
# A frame's own buffer starts at most this big and doubles as its bytes arrive, so memory follows the bytes
# received, never the size a peer merely claims (a 4-byte prefix announcing 100 MB must not cost 100 MB).
_FIRST_CHUNK = 1 << 20


class FrameTooLarge(ValueError):
    """A frame's size prefix is negative or above the limit; the connection must close."""


class FrameSplitter:
    """Splits a byte stream into frames (the bytes after each int32 size prefix).

    The size is checked before anything is allocated for the frame. Frames are returned as
    writable memoryviews over bytearrays of their own, so the broker can assign offsets in place.
    """

    __slots__ = ("max_frame", "_scratch", "_start", "_end", "_frame", "_filled", "_size")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME):
        self.max_frame = max_frame
        self._scratch = bytearray(_SCRATCH)
        self._start = 0  # unconsumed bytes are _scratch[_start:_end]
        self._end = 0
        self._frame: bytearray | None = None  # a large frame being received directly
        self._filled = 0
        self._size = 0  # the size of _frame once whole

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Where the next received bytes should go."""
        if self._frame is not None:
            if self._filled == len(self._frame):  # full but not whole yet: double it, up to the frame size
                grown = bytearray(min(self._size, 2 * len(self._frame)))
                grown[: self._filled] = self._frame
                self._frame = grown
            return memoryview(self._frame)[self._filled :]
        if len(self._scratch) - self._end < 4096:
            # Move the unconsumed tail (less than one small frame) to the front to make room.
            tail = self._end - self._start
            self._scratch[:tail] = self._scratch[self._start : self._end]
            self._start, self._end = 0, tail
        return memoryview(self._scratch)[self._end :]

    def buffer_updated(self, nbytes: int) -> list[memoryview]:
        """`nbytes` were written into the last buffer from get_buffer(); return the frames now whole."""
        if self._frame is not None:
            self._filled += nbytes
            if self._filled < self._size:
                return []
            frame, self._frame = self._frame, None
            return [memoryview(frame)]
        self._end += nbytes
        return self._split()

    def _split(self) -> list[memoryview]:
        frames: list[memoryview] = []
        scratch = self._scratch
        while self._end - self._start >= 4:
            (size,) = _SIZE.unpack_from(scratch, self._start)
            if size < 0 or size > self.max_frame:
                raise FrameTooLarge(f"frame size {size} is outside 0..{self.max_frame}")
            body = self._start + 4
            have = self._end - body
            if have >= size:
                frames.append(memoryview(scratch[body : body + size]))  # a copy: scratch is reused
                self._start = body + size
            elif size > _OWN_BUFFER_ABOVE:
                # Allocated only now that `size` is known to be within the limit, and only in part.
                frame = bytearray(min(size, max(have, _FIRST_CHUNK)))
                self._size = size
                frame[:have] = scratch[body : self._end]
                self._frame, self._filled = frame, have
                self._start = self._end = 0
                return frames
            else:
                break
        if self._start == self._end:
            self._start = self._end = 0
        return frames

    def feed(self, data) -> list[memoryview]:
        """Add received bytes; return every frame now complete, in order."""
        data = memoryview(data).cast("B")
        frames: list[memoryview] = []
        pos = 0
        while pos < len(data):
            buf = self.get_buffer()
            n = min(len(buf), len(data) - pos)
            buf[:n] = data[pos : pos + n]
            pos += n
            frames.extend(self.buffer_updated(n))
        return frames

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned in a frame."""
        return self._filled if self._frame is not None else self._end - self._start
