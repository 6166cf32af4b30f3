"""One log segment: `<base>.log` (raw v2 batches), `<base>.index` (sparse offset index), `<base>.timeindex`.

Index entries (big-endian, as Kafka's):
    .index      relative offset int32 (batch baseOffset - segment base), position int32 (byte offset in .log)
    .timeindex  timestamp int64 (largest batch maxTimestamp so far in the segment), relative offset int32
An entry is added when more than index.interval.bytes of log were written since the previous one, and the time
index gets a final entry when the segment is closed (rolled), so its last entry is the segment's max timestamp.
Both are kept in memory as arrays too (8 bytes per entry: 2 MiB per GiB of log at the default interval).

Replacing adjacent segments by one (compaction writes the new one's batches to `<F>.log.cleaned`; PartitionLog.
replace_segments commits it), crash-safe: each arrow ends with an fsync of the file or directory, and
finish_interrupted_swaps() completes or drops the work on open. F and L are the bases of the first and last
segment replaced.
  1. write F.log.cleaned                              crash: the leftover .cleaned file is deleted on open
  2. rename F.log.cleaned -> F-L.log.swap             commit point: open completes steps 3-4
  3. remove the group's indexes and its other .logs   (so no stale index or segment sits next to the new log)
  4. rename F-L.log.swap -> F.log                     the new segment's indexes are rebuilt from batch headers
"""

from __future__ import annotations

import bisect
import os
import struct
from array import array
from dataclasses import dataclass
from typing import Iterator, Sequence

from kafkalite.log.fs import File, FileSystem
from kafkalite.protocol.errors import DecodeError
from kafkalite.protocol.record_batch import HEADER, HEADER_SIZE, LOG_OVERHEAD, RecordBatch, batch_length_at

_INDEX_ENTRY = struct.Struct(">ii")
_TIME_ENTRY = struct.Struct(">qi")
INDEX_ENTRY_SIZE = _INDEX_ENTRY.size  # 8
TIME_ENTRY_SIZE = _TIME_ENTRY.size  # 12
MIN_BATCH_LENGTH = HEADER_SIZE - LOG_OVERHEAD  # smallest valid batchLength (49)
SCAN_CHUNK = 1 << 20  # read-ahead when validating a whole segment
HEADER_CHUNK = 16 << 10  # read-ahead when walking headers only (one pread covers many small batches)


CLEANED = ".log.cleaned"
SWAP = ".log.swap"


def segment_name(base_offset: int, suffix: str) -> str:
    return f"{base_offset:020d}{suffix}"


def _swap_name(first_base: int, last_base: int) -> str:
    """<first base>-<last base>.log.swap: recovery then knows every segment the swap replaces."""
    return f"{first_base:020d}-{last_base:020d}{SWAP}"


def commit_swap(fs: FileSystem, directory: str, old: Sequence[Segment], cleaned: str) -> None:
    """Steps 2-4 above: make the fsynced file `cleaned` the `.log` of old[0]'s base, in place of the segments
    `old` (whose files are removed; their open handles still read them until closed)."""
    first = old[0]
    swap = os.path.join(directory, _swap_name(first.base_offset, old[-1].base_offset))
    fs.rename(cleaned, swap)
    fs.fsync_dir(directory)
    for seg in old:
        for suffix in (".index", ".timeindex"):
            fs.remove(seg.path(suffix))
    for seg in old[1:]:
        fs.remove(seg.path(".log"))
    fs.fsync_dir(directory)
    fs.rename(swap, first.path(".log"))
    fs.fsync_dir(directory)


def finish_interrupted_swaps(fs: FileSystem, directory: str) -> None:
    """On open: drop unfinished rewrites (step 1), complete committed swaps (steps 3-4)."""
    changed = False
    for name in fs.listdir(directory):
        if name.endswith(CLEANED):
            fs.remove(os.path.join(directory, name))
            changed = True
    names = fs.listdir(directory)
    for name in names:
        if name.endswith(SWAP):
            first, _, last = name[: -len(SWAP)].partition("-")
            first = int(first)
            last = int(last) if last else first  # a swap of one segment, as older versions named it
            for other in names:  # the group's files, except the first .log, which the swap replaces
                stem, _, suffix = other.partition(".")
                base = int(stem) if stem.isdigit() else -1
                if (suffix in ("log", "index", "timeindex") and first <= base <= last
                        and other != segment_name(first, ".log")):
                    fs.remove(os.path.join(directory, other))
            fs.fsync_dir(directory)
            fs.rename(os.path.join(directory, name), os.path.join(directory, segment_name(first, ".log")))
            changed = True
    if changed:
        fs.fsync_dir(directory)


@dataclass(slots=True)
class BatchHeader:
    """The header fields the log needs, read without reading the batch body."""

    position: int
    base_offset: int
    size: int  # whole batch, LOG_OVERHEAD included
    last_offset: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    attributes: int
    records_count: int
    magic: int
    partition_leader_epoch: int

    @property
    def next_offset(self) -> int:
        return self.last_offset + 1


def parse_header(buf, pos: int, file_position: int) -> BatchHeader:
    (base, length, epoch, magic, _crc, attributes, last_delta, _base_ts, max_ts, pid, pepoch, base_seq,
     count) = HEADER.unpack_from(buf, pos)
    return BatchHeader(file_position, base, length + LOG_OVERHEAD, base + last_delta, max_ts, pid, pepoch,
                       base_seq, attributes, count, magic, epoch)


def header_of(batch: RecordBatch, position: int) -> BatchHeader:
    return BatchHeader(position, batch.base_offset, batch.size, batch.last_offset, batch.max_timestamp,
                       batch.producer_id, batch.producer_epoch, batch.base_sequence, batch.attributes,
                       batch.records_count, batch.magic, batch.partition_leader_epoch)


class CorruptSegment(Exception):
    """Raised by header walks when the bytes at a position are not a plausible batch header."""


class Segment:
    """A segment's three files plus its in-memory index arrays. Not thread-safe; PartitionLog coordinates."""

    def __init__(self, fs: FileSystem, directory: str, base_offset: int, index_interval_bytes: int,
                 created_ms: int):
        self.fs = fs
        self.directory = directory
        self.base_offset = base_offset
        self.index_interval_bytes = index_interval_bytes
        self.created_ms = created_ms
        self.log: File | None = None
        self.index_file: File | None = None
        self.time_file: File | None = None
        self.size = 0  # bytes in .log that hold whole, accepted batches
        self.next_offset = base_offset  # offset after the last batch
        self.max_timestamp = -1
        self.offset_of_max_timestamp = -1
        self.index_offsets = array("q")  # absolute base offsets of indexed batches
        self.index_positions = array("q")
        self.time_timestamps = array("q")
        self.time_offsets = array("q")
        self.bytes_since_index = 0
        self.index_dirty = False  # index files written since their last fsync
        self.closed = False

    # -- files ----------------------------------------------------------------------------------------------

    def path(self, suffix: str) -> str:
        return os.path.join(self.directory, segment_name(self.base_offset, suffix))

    def open_files(self, create: bool) -> None:
        self.log = self.fs.open(self.path(".log"), create=create)
        self.index_file = self.fs.open(self.path(".index"), create=True)
        self.time_file = self.fs.open(self.path(".timeindex"), create=True)

    def close(self) -> None:
        self.closed = True
        for f in (self.log, self.index_file, self.time_file):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass

    def delete_files(self) -> None:
        self.close()
        self.remove_files()

    def remove_files(self) -> None:
        """Unlink the files; open handles still read them until closed. Removes .log first: a crash in between
        leaves orphan index files, which open() removes."""
        for suffix in (".log", ".index", ".timeindex"):
            try:
                self.fs.remove(self.path(suffix))
            except FileNotFoundError:
                pass

    def flush_log(self) -> None:
        self.log.fsync()

    def flush_indexes(self) -> None:
        if self.index_dirty:
            self.index_file.fsync()
            self.time_file.fsync()
            self.index_dirty = False

    # -- appending ------------------------------------------------------------------------------------------

    def append(self, data, header: BatchHeader) -> None:
        """Write one batch at the end of .log and index it. On error the caller rolls back with truncate_to_size."""
        position = self.size
        self.log.pwrite(data, position)
        self.size = position + header.size
        self.next_offset = header.next_offset
        self._track(header, position)

    def save_state(self) -> tuple:
        """Everything append changes, to undo a failed append with restore_state."""
        return (self.size, self.next_offset, len(self.index_offsets), len(self.time_offsets),
                self.bytes_since_index, self.max_timestamp, self.offset_of_max_timestamp)

    def restore_state(self, state: tuple) -> None:
        size, next_offset, n_index, n_time, since, max_ts, max_ts_offset = state
        self.log.truncate(size)
        self.index_file.truncate(n_index * INDEX_ENTRY_SIZE)
        self.time_file.truncate(n_time * TIME_ENTRY_SIZE)
        del self.index_offsets[n_index:], self.index_positions[n_index:]
        del self.time_timestamps[n_time:], self.time_offsets[n_time:]
        self.size, self.next_offset, self.bytes_since_index = size, next_offset, since
        self.max_timestamp, self.offset_of_max_timestamp = max_ts, max_ts_offset

    def _track(self, header: BatchHeader, position: int) -> None:
        """Update max timestamp and add index entries for a batch already in the file at `position`."""
        if header.max_timestamp > self.max_timestamp:
            self.max_timestamp = header.max_timestamp
            self.offset_of_max_timestamp = header.last_offset
        self.bytes_since_index += header.size
        if self.bytes_since_index > self.index_interval_bytes or not self.index_offsets:
            self._add_index_entry(header.base_offset, position)
            if not self.time_timestamps or self.max_timestamp > self.time_timestamps[-1]:
                self._add_time_entry(self.max_timestamp, self.offset_of_max_timestamp)
            self.bytes_since_index = 0

    def _add_index_entry(self, offset: int, position: int) -> None:
        entry = _INDEX_ENTRY.pack(offset - self.base_offset, position)
        self.index_file.pwrite(entry, len(self.index_offsets) * INDEX_ENTRY_SIZE)
        self.index_offsets.append(offset)
        self.index_positions.append(position)
        self.index_dirty = True

    def _add_time_entry(self, timestamp: int, offset: int) -> None:
        if self.time_offsets and offset <= self.time_offsets[-1]:
            return  # entries must grow in both timestamp and offset
        entry = _TIME_ENTRY.pack(timestamp, offset - self.base_offset)
        self.time_file.pwrite(entry, len(self.time_offsets) * TIME_ENTRY_SIZE)
        self.time_timestamps.append(timestamp)
        self.time_offsets.append(offset)
        self.index_dirty = True

    def seal_time_index(self) -> None:
        """At roll/close: make the time index's last entry the segment's max timestamp (Kafka does the same)."""
        if self.max_timestamp >= 0 and (not self.time_timestamps or self.max_timestamp > self.time_timestamps[-1]):
            self._add_time_entry(self.max_timestamp, self.offset_of_max_timestamp)

    def index_full(self, segment_index_bytes: int) -> bool:
        return (len(self.index_offsets) + 1) * INDEX_ENTRY_SIZE > segment_index_bytes

    # -- looking up -----------------------------------------------------------------------------------------

    def position_hint(self, offset: int) -> tuple[int, int]:
        """(position, base offset) of the last indexed batch starting at or before `offset`; (0, base) if none."""
        i = bisect.bisect_right(self.index_offsets, offset) - 1
        if i < 0:
            return 0, self.base_offset
        return self.index_positions[i], self.index_offsets[i]

    def time_hint(self, timestamp: int) -> int:
        """An offset from which to scan for the first batch with maxTimestamp >= timestamp."""
        i = bisect.bisect_left(self.time_timestamps, timestamp) - 1
        return self.time_offsets[i] if i >= 0 else self.base_offset

    def headers(self, position: int = 0, end: int | None = None, chunk: int = HEADER_CHUNK) -> Iterator[BatchHeader]:
        """Walk batch headers from `position` (a batch boundary) to `end`, reading ahead in chunks.

        Raises CorruptSegment when the bytes at a position are not a plausible header (bad magic or length)."""
        end = self.size if end is None else end
        buf = b""
        buf_start = position
        while position + HEADER_SIZE <= end:
            if position + HEADER_SIZE > buf_start + len(buf):
                buf_start = position
                buf = self.log.pread(min(chunk, end - position), position)
                if len(buf) < HEADER_SIZE:
                    raise CorruptSegment(f"short read at {position}")
            header = parse_header(buf, position - buf_start, position)
            if (header.magic != 2 or header.size < HEADER_SIZE or position + header.size > end
                    or header.last_offset < header.base_offset):
                raise CorruptSegment(f"no valid batch header at position {position} of {self.path('.log')}")
            yield header
            position += header.size

    def read(self, position: int, size: int) -> bytes:
        return self.log.pread(size, position)

    def read_batches(self, position: int, offset: int, max_bytes: int,
                     max_offset: int = 2**63 - 1) -> memoryview | None:
        """Whole batches from the first one holding an offset >= `offset`, walking from `position` (a batch
        boundary at or before it): as many as fit in max_bytes, but at least one, and only batches whose last
        offset is below max_offset. None if the segment has no batch at or after `offset`; an empty view if the
        first one reaches max_offset.

        One pread covers the walk and the data (the batches before `offset` lie within about one index interval
        of the index's hint), and the result is a view of what was read: the bytes are read once."""
        end = self.size
        window = max(max_bytes, HEADER_CHUNK) + self.index_interval_bytes
        buf = memoryview(b"")
        pos = 0  # within buf; buf starts at file position `position`
        start = None
        while True:
            if pos + HEADER_SIZE > len(buf):
                if start is not None or position + pos + HEADER_SIZE > end:
                    break
                position += pos  # walked past this window before finding `offset`: read the next one
                buf, pos = memoryview(self.log.pread(min(window, end - position), position)), 0
                if len(buf) < HEADER_SIZE:
                    raise CorruptSegment(f"short read at {position}")
                continue
            header = parse_header(buf, pos, position + pos)
            if (header.magic != 2 or header.size < HEADER_SIZE or position + pos + header.size > end
                    or header.last_offset < header.base_offset):
                raise CorruptSegment(f"no valid batch header at position {position + pos} of {self.path('.log')}")
            if start is None:
                if header.last_offset >= offset:
                    if header.last_offset >= max_offset:
                        return buf[pos:pos]
                    if pos + header.size > len(buf):  # one batch larger than the window: read it whole
                        return memoryview(self.log.pread(header.size, position + pos))
                    start = pos
            elif (pos + header.size > len(buf) or pos - start + header.size > max_bytes
                  or header.last_offset >= max_offset):
                break
            pos += header.size
        return None if start is None else buf[start:pos]

    # -- rebuilding and truncating --------------------------------------------------------------------------

    def reset_indexes(self) -> None:
        """Forget all index entries (in memory and on disk), e.g. before a rebuild."""
        self.index_file.truncate(0)
        self.time_file.truncate(0)
        for arr in (self.index_offsets, self.index_positions, self.time_timestamps, self.time_offsets):
            del arr[:]
        self.bytes_since_index = 0
        self.max_timestamp = -1
        self.offset_of_max_timestamp = -1
        self.index_dirty = True

    def rebuild_from_headers(self) -> None:
        """Rebuild both indexes and the max timestamp from the batch headers (no CRC check: trusted data)."""
        self.reset_indexes()
        self.next_offset = self.base_offset
        for header in self.headers(0):
            self._track(header, header.position)
            self.next_offset = header.next_offset

    def recover(self, validate_from: int | None = None) -> int:
        """Validate batches (length, magic, CRC, dense offsets) from offset `validate_from` (default: the
        segment base) to the end, rebuild the indexes, and truncate at the first invalid batch. The part below
        `validate_from` was fsynced and validated before: it is located through its index (or a header walk)
        and not read again. Returns the number of bytes truncated."""
        file_size = self.log.size()
        self.size = file_size
        position, expected_offset, strict = 0, self.base_offset, True
        if validate_from is not None and validate_from > self.base_offset:
            try:
                position, expected_offset = self._skip_trusted_prefix(validate_from)
            except CorruptSegment:
                # The trusted part is damaged after all: validate everything, allowing compaction's gaps.
                position, expected_offset, strict = 0, self.base_offset, False
        if position == 0:
            self.reset_indexes()
        buf = b""
        buf_start = 0
        while position + HEADER_SIZE <= file_size:
            if position + HEADER_SIZE > buf_start + len(buf):
                buf_start, buf = position, self.log.pread(min(SCAN_CHUNK, file_size - position), position)
            length = batch_length_at(buf, position - buf_start)
            size = length + LOG_OVERHEAD
            if length < MIN_BATCH_LENGTH or position + size > file_size:
                break
            if position + size > buf_start + len(buf):
                buf_start, buf = position, self.log.pread(max(size, min(SCAN_CHUNK, file_size - position)),
                                                          position)
            view = memoryview(buf)[position - buf_start: position - buf_start + size]
            try:
                batch = RecordBatch(view)
            except DecodeError:
                break
            if strict and batch.base_offset != expected_offset:
                break  # baseOffset lies outside the CRC: density is what proves it intact
            if batch.base_offset < expected_offset or batch.last_offset_delta < 0 or not batch.crc_ok():
                break
            self._track(header_of(batch, position), position)
            expected_offset = batch.next_offset
            position += size
        self.size = position
        self.next_offset = expected_offset
        truncated = file_size - position
        if truncated:
            self.log.truncate(position)
            self.log.fsync()  # else the cut-off bytes could come back after the next power cut
            self.bytes_since_index = self.index_interval_bytes
        return truncated

    def _skip_trusted_prefix(self, offset: int) -> tuple[int, int]:
        """Position and offset of the first batch at or after `offset`, using the saved index; keeps index
        entries below it. Raises CorruptSegment if the headers on the way do not add up."""
        self.next_offset = 2**63 - 1  # unknown yet: let load_indexes accept any entry below the file size
        if not self.load_indexes():
            self.reset_indexes()
        keep = bisect.bisect_left(self.index_offsets, offset)
        keep_t = bisect.bisect_left(self.time_offsets, offset)
        del self.index_offsets[keep:], self.index_positions[keep:]
        del self.time_timestamps[keep_t:], self.time_offsets[keep_t:]
        self.index_file.truncate(keep * INDEX_ENTRY_SIZE)
        self.time_file.truncate(keep_t * TIME_ENTRY_SIZE)
        self.index_dirty = True
        if self.time_timestamps:
            self.max_timestamp, self.offset_of_max_timestamp = self.time_timestamps[-1], self.time_offsets[-1]
        else:
            self.max_timestamp, self.offset_of_max_timestamp = -1, -1
        position, expected = self.position_hint(offset)
        if keep:  # the walk restarts at an indexed batch: it is already in the index
            del self.index_offsets[-1], self.index_positions[-1]
            self.index_file.truncate((keep - 1) * INDEX_ENTRY_SIZE)
        self.bytes_since_index = 0
        for header in self.headers(position, self.size):
            if header.base_offset >= offset:
                return header.position, header.base_offset
            if header.base_offset < expected:
                raise CorruptSegment("offsets go backwards")
            self._track(header, header.position)
            expected = header.next_offset
            position = header.position + header.size
        return position, expected

    def load_indexes(self) -> bool:
        """Load .index/.timeindex written by an earlier run. Returns False if they look damaged or stale
        (the caller then rebuilds them from the log)."""
        index = self.index_file.pread(self.index_file.size(), 0)
        times = self.time_file.pread(self.time_file.size(), 0)
        if len(index) % INDEX_ENTRY_SIZE or len(times) % TIME_ENTRY_SIZE:
            return False
        offsets, positions, stamps, toffsets = array("q"), array("q"), array("q"), array("q")
        last_offset, last_position = -1, -1
        for rel, position in _INDEX_ENTRY.iter_unpack(index):
            offset = self.base_offset + rel
            if rel < 0 or offset <= last_offset or position <= last_position or position >= self.size:
                return False
            offsets.append(offset)
            positions.append(position)
            last_offset, last_position = offset, position
        if self.size and (not positions or positions[0] != 0):
            return False
        last_ts, last_offset = -2**63, -1
        for ts, rel in _TIME_ENTRY.iter_unpack(times):
            offset = self.base_offset + rel
            if rel < 0 or ts <= last_ts or offset <= last_offset or offset >= self.next_offset:
                return False
            stamps.append(ts)
            toffsets.append(offset)
            last_ts, last_offset = ts, offset
        self.index_offsets, self.index_positions = offsets, positions
        self.time_timestamps, self.time_offsets = stamps, toffsets
        if stamps:
            self.max_timestamp, self.offset_of_max_timestamp = stamps[-1], toffsets[-1]
        return True

    def truncate_to_size(self, size: int, next_offset: int) -> None:
        """Cut .log at `size` (a batch boundary) and drop index entries at or past it."""
        self.log.truncate(size)
        self.size = size
        self.next_offset = next_offset
        keep = bisect.bisect_left(self.index_positions, size)
        if keep < len(self.index_positions):
            del self.index_offsets[keep:]
            del self.index_positions[keep:]
            self.index_file.truncate(keep * INDEX_ENTRY_SIZE)
            self.index_dirty = True
        keep_t = bisect.bisect_left(self.time_offsets, next_offset)
        if keep_t < len(self.time_offsets):
            del self.time_timestamps[keep_t:]
            del self.time_offsets[keep_t:]
            self.time_file.truncate(keep_t * TIME_ENTRY_SIZE)
            self.index_dirty = True
        self.bytes_since_index = self.index_interval_bytes  # index the next batch
        if self.offset_of_max_timestamp >= next_offset:
            self._recompute_max_timestamp()

    def _recompute_max_timestamp(self) -> None:
        self.max_timestamp, self.offset_of_max_timestamp = -1, -1
        for header in self.headers(0):
            if header.max_timestamp > self.max_timestamp:
                self.max_timestamp, self.offset_of_max_timestamp = header.max_timestamp, header.last_offset
