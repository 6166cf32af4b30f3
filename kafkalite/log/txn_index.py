"""The aborted-transactions index of a partition: Kafka's `.txnindex`, one file per segment.

Each entry is one aborted transaction, appended when its ABORT marker is written, to the file of the segment
that holds the marker:

    version int16 (0), producer id int64, first offset int64, last offset int64 (the marker's),
    last stable offset int64 (the partition's LSO once the marker was written)        34 bytes, big-endian

A read_committed Fetch answers with the entries whose transactions overlap the range it returns, so the
consumer drops those producers' records from the first offset until the marker. The index is kept in memory
(aborts are rare); on open every `.txnindex` file is read, entries below the log start are dropped, and
recovery cuts the entries at or after the offset it replays from, then re-adds them from the ABORT markers it
replays (so a torn tail or a lost file after the last producer snapshot is rebuilt). Compaction drops the entries
of transactions it has removed every batch of (compaction.py).
"""

from __future__ import annotations

import bisect
import os
import struct
from dataclasses import dataclass

from kafkalite.log.fs import FileSystem
from kafkalite.log.segment import segment_name

SUFFIX = ".txnindex"
_ENTRY = struct.Struct(">hqqqq")
VERSION = 0


@dataclass(frozen=True, slots=True)
class AbortedTxn:
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


class AbortedTxnIndex:
    def __init__(self, fs: FileSystem, directory: str):
        self.fs = fs
        self.directory = directory
        self.entries: list[AbortedTxn] = []  # in last_offset order (markers are appended in log order)

    def _path(self, base: int) -> str:
        return os.path.join(self.directory, segment_name(base, SUFFIX))

    def _files(self) -> list[int]:
        return sorted(int(n[:-len(SUFFIX)]) for n in self.fs.listdir(self.directory)
                      if n.endswith(SUFFIX) and n[:-len(SUFFIX)].isdigit())

    def load(self, log_start: int) -> None:
        """Read every file; a torn or unknown entry ends its file's entries."""
        entries = []
        for base in self._files():
            data = self.fs.read_file(self._path(base))
            for pos in range(0, len(data) - _ENTRY.size + 1, _ENTRY.size):
                version, pid, first, last, lso = _ENTRY.unpack_from(data, pos)
                if version != VERSION:
                    break
                entries.append(AbortedTxn(pid, first, last, lso))
        entries.sort(key=lambda e: e.last_offset)
        self.entries = [e for e in entries if e.last_offset >= log_start]

    def append(self, entry: AbortedTxn, segment_base: int) -> None:
        path = self._path(segment_base)
        existed = self.fs.exists(path)
        f = self.fs.open(path, create=True)
        try:
            size = f.size()
            f.truncate(size - size % _ENTRY.size)  # a torn entry of an earlier crash goes
            f.pwrite(_ENTRY.pack(VERSION, entry.producer_id, entry.first_offset, entry.last_offset,
                                 entry.last_stable_offset), size - size % _ENTRY.size)
            f.fsync()  # aborts are rare; replay only rebuilds the entries after the last producer snapshot
        finally:
            f.close()
        if not existed:
            self.fs.fsync_dir(self.directory)
        self.entries.append(entry)

    def truncate_from(self, offset: int, segment_bases: list[int]) -> None:
        """Forget the entries whose marker is at or after `offset` (truncation, replay), on disk too."""
        if not self.entries or self.entries[-1].last_offset < offset:
            return
        self.entries = [e for e in self.entries if e.last_offset < offset]
        self._rewrite(segment_bases)

    def drop_below(self, log_start: int, segment_bases: list[int]) -> None:
        """Retention moved the log start: entries wholly below it, and files of deleted segments, go."""
        if self.entries and self.entries[0].last_offset < log_start:
            self.entries = [e for e in self.entries if e.last_offset >= log_start]
            self._rewrite(segment_bases)

    def replace_below(self, offset: int, entries: list[AbortedTxn], segment_bases: list[int]) -> None:
        """Compaction: the entries whose marker is below `offset` become `entries` (in marker order), on disk too.
        A crash part way leaves some files old: harmless, as no aborted record is left below `offset`."""
        self.entries = list(entries) + [e for e in self.entries if e.last_offset >= offset]
        self._rewrite(segment_bases)

    def _rewrite(self, segment_bases: list[int]) -> None:
        """Each entry in the file of the segment that holds its marker; files with none are removed."""
        by_file: dict[int, bytearray] = {}
        for e in self.entries:
            i = max(0, bisect.bisect_right(segment_bases, e.last_offset) - 1)
            by_file.setdefault(segment_bases[i] if segment_bases else 0, bytearray()).extend(
                _ENTRY.pack(VERSION, e.producer_id, e.first_offset, e.last_offset, e.last_stable_offset))
        for base in self._files():
            if base not in by_file:
                self.fs.remove(self._path(base))
        for base, data in by_file.items():
            self.fs.write_file_atomic(self._path(base), bytes(data))

    def overlapping(self, start: int, end: int) -> list[AbortedTxn]:
        """The aborted transactions a read of [start, end) must tell the consumer about: those whose marker is
        at or after `start` and whose first record is before `end`."""
        i = bisect.bisect_left(self.entries, start, key=lambda e: e.last_offset)
        return [e for e in self.entries[i:] if e.first_offset < end]
