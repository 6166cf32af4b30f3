"""LeaderEpochCache: which leader epoch wrote which offsets of a partition, as Kafka's leader-epoch-checkpoint.

An entry (epoch, start offset) says that `epoch`'s leader wrote the log from `start offset` up to the next
entry's start offset (the last entry: up to the log end). Entries grow strictly in both epoch and start offset.
A follower uses it to find where its log diverges from a new leader's (OffsetForLeaderEpoch, Fetch's
diverging_epoch) and truncates there.

Every change is written to `leader-epoch-checkpoint` (checkpoint.py: Kafka's text layout) with
FileSystem.write_file_atomic before it is made in memory, and before the log writes any batch of a new epoch: so
the file always covers every batch in the log. After a crash it may name epochs whose batches were lost; the log
then truncates it to the recovered log end. Not thread-safe for writers (the log's owner, or housekeeping while
the owner holds writers back); readers see whole snapshots (the entries are a tuple, replaced whole).
"""

from __future__ import annotations

import bisect
import os

from kafkalite.log.checkpoint import LEADER_EPOCH_CHECKPOINT_FILE, encode_leader_epochs
from kafkalite.log.fs import FileSystem

NO_EPOCH = -1  # Kafka's UNDEFINED_EPOCH
NO_OFFSET = -1  # Kafka's UNDEFINED_EPOCH_OFFSET


class LeaderEpochCache:
    def __init__(self, fs: FileSystem, directory: str, entries: tuple[tuple[int, int], ...] = ()):
        self.fs = fs
        self.path = os.path.join(directory, LEADER_EPOCH_CHECKPOINT_FILE)
        self._entries = tuple(entries)

    @property
    def entries(self) -> tuple[tuple[int, int], ...]:
        """(epoch, start offset) pairs, oldest first."""
        return self._entries

    @property
    def latest_epoch(self) -> int:
        """The newest epoch with an entry, or NO_EPOCH (-1)."""
        return self._entries[-1][0] if self._entries else NO_EPOCH

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that `epoch` starts at `start_offset`. An epoch that is not newer than the latest is ignored (as
        Kafka's log does for batches of an epoch it knows). Entries at or after `start_offset` are removed first,
        as Kafka does: they name offsets the log no longer holds. Returns whether anything changed."""
        if epoch < 0 or start_offset < 0:
            raise ValueError(f"leader epoch entry ({epoch}, {start_offset}) is negative")
        if epoch <= self.latest_epoch:
            return False
        kept = tuple(e for e in self._entries if e[1] < start_offset)
        self._save(kept + ((epoch, start_offset),))
        return True

    def end_offset_for(self, requested_epoch: int, log_end: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (the largest epoch <= requested_epoch, the offset where it ended).

        The latest epoch ends at the log end; an older one where the next higher epoch starts. An undefined
        (-1) or unknown newer epoch gives (NO_EPOCH, NO_OFFSET). An epoch older than every entry gives
        (requested_epoch, the first entry's start offset), as Kafka does: its data is gone (retention moved the
        log start), so a follower replicates from what the leader still has."""
        entries = self._entries
        if requested_epoch == NO_EPOCH or not entries or requested_epoch > entries[-1][0]:
            return NO_EPOCH, NO_OFFSET
        if requested_epoch == entries[-1][0]:
            return requested_epoch, log_end
        higher = bisect.bisect_right(entries, requested_epoch, key=_epoch_of)  # first entry newer than asked
        if higher == 0:
            return requested_epoch, entries[0][1]
        return entries[higher - 1][0], entries[higher][1]

    def truncate_from_end(self, end_offset: int) -> None:
        """The log was truncated to `end_offset`: forget the epochs that start at or after it."""
        kept = tuple(e for e in self._entries if e[1] < end_offset)
        if kept != self._entries:
            self._save(kept)

    def truncate_from_start(self, start_offset: int) -> None:
        """The log start moved up to `start_offset`: the epoch holding it now starts there, and older ones go."""
        entries = self._entries
        gone = bisect.bisect_right(entries, start_offset, key=_start_of)  # entries starting at or below it
        if gone == 0 or (gone == 1 and entries[0][1] == start_offset):
            return
        self._save(((entries[gone - 1][0], start_offset),) + entries[gone:])

    def save(self) -> None:
        """Write the current entries (after a rebuild)."""
        self._save(self._entries)

    def _save(self, entries: tuple[tuple[int, int], ...]) -> None:
        self.fs.write_file_atomic(self.path, encode_leader_epochs(list(entries)))
        self._entries = entries


def _epoch_of(entry: tuple[int, int]) -> int:
    return entry[0]


def _start_of(entry: tuple[int, int]) -> int:
    return entry[1]
