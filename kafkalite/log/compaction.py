"""Log compaction (cleanup.policy=compact): keep the newest record per key in closed segments.

The only place the log store decodes records (it must read keys). Rules:
  - Only closed segments wholly below the persisted recovery point are rewritten (so recovery never needs to
    validate a compacted segment, whose last offset may end before the next segment's base), and only a prefix
    of them whose newest timestamp is at least min.compaction.lag.ms old.
  - A keyed record is kept if it is the newest record for its key among those segments. Records in the active
    segment are not considered (as in Kafka, they are the "dirty" part the next round will see).
  - A tombstone (null value) that is the newest for its key is dropped once its batch's max timestamp is older
    than delete.retention.ms.
  - Records without a key and batches left untouched are copied byte for byte. A batch that loses records is
    rebuilt as one batch per run of consecutive kept offsets (same producer id/epoch, codec, timestamp type,
    leader epoch; sequence numbers shifted to match), so every kept record keeps its offset.

Transactions, as Kafka's cleaner (KIP-98, KIP-534):
  - Nothing at or above the last stable offset is compacted: only segments that end at or below both the high
    watermark and the first offset of the oldest open transaction are candidates.
  - The batches of aborted transactions (known from the aborted-transactions index) are removed, and never
    supersede an older record of their key.
  - A transaction marker (control batch) stays while any batch of its transaction was still in the log when the
    round started. Once a round finds none, it stamps the marker with a delete horizon (attributes bit 6, and
    baseTimestamp = now + delete.retention.ms); a round after the horizon removes it. As for tombstones, those
    rounds are ordinary rounds, which wait for dirty data.
  - The last batch of every producer the log still knows is kept, so producer state rebuilt from the log (a
    new replica, lost snapshots) still deduplicates its retries and fences its old epochs: its last data batch
    stays whole, or as an empty batch (header only, same offsets and sequences) when all its records go; when
    its last write was a marker of its current epoch, that marker stays.
  - Afterwards the index holds the aborted transactions whose marker is in the compacted range only while a batch
    of theirs is still there (from the first such batch on), which is what recovery rebuilds from the log.

When, as in Kafka: offsets below the cleaner point were compacted by an earlier round; the segments from there up
to the first uncleanable one are dirty. A round runs only if some are, and then only if they make up more than
min.cleanable.dirty.ratio of the compactable bytes, or the oldest of them (its first batch's max timestamp) has
waited longer than max.compaction.lag.ms. The cleaner point is kept in cleaner.checkpoint; it only decides when
rounds run, so losing it (or finding it stale after a truncation) costs at most an early or late round.

A round rewrites groups of adjacent segments whose compacted sizes add up to at most segment.bytes as one segment
each (Kafka groups them too), so compacted segments merge instead of piling up.

This module plans rounds and writes the new segments' bytes (`<first base>.log.cleaned`); the log commits each
with PartitionLog.replace_segments (crash-safe; the steps are in segment.py). It uses only the log's public
interface (CompactableLog below), and the log keeps the cleaner point (cleaner.checkpoint, checkpoint.py).
"""

from __future__ import annotations

import bisect
from typing import NamedTuple, Protocol, Sequence

from kafkalite.log.config import LogConfig
from kafkalite.log.fs import FileSystem
from kafkalite.log.segment import CLEANED, Segment
from kafkalite.log.txn_index import AbortedTxn
from kafkalite.protocol.record_batch import (
    CODEC_MASK, CONTROL_BIT, DELETE_HORIZON_BIT, TRANSACTIONAL_BIT, RecordBatch, build_batch, encode_header,
)

_MAX_RELATIVE_OFFSET = 2**31 - 1  # index entries hold offsets relative to the segment's base as int32


class CompactableLog(Protocol):
    """What compaction needs of a partition log (PartitionLog provides it)."""

    fs: FileSystem
    config: LogConfig

    @property
    def segments(self) -> tuple[Segment, ...]: ...

    @property
    def recovery_point(self) -> int: ...

    @property
    def log_start_offset(self) -> int: ...

    @property
    def cleaner_point(self) -> int: ...

    @property
    def high_watermark(self) -> int: ...

    def first_unstable_offset(self) -> int | None: ...

    def aborted_transactions(self, start: int, end: int) -> list[AbortedTxn]: ...

    def producer_last_offsets(self) -> dict[int, tuple[int, int]]: ...

    def replace_segments(self, old: Sequence[Segment], cleaned: str) -> bool: ...

    def replace_aborted_transactions(self, below: int, entries: list[AbortedTxn]) -> None: ...


class Round(NamedTuple):
    rewritten: int  # segments replaced
    cleaner_point: int  # offsets below it are now compacted: the log saves it


def compact(log: CompactableLog, now_ms: int) -> Round | None:
    """One compaction round if one is due (see the module docstring); None if none is."""
    config = log.config
    segments = log.segments
    stable = log.high_watermark  # the last stable offset: no open transaction's batches are compacted
    unstable = log.first_unstable_offset()
    if unstable is not None:
        stable = min(stable, unstable)
    candidates: list[Segment] = []
    for seg, following in zip(segments, segments[1:]):
        if following.base_offset > min(log.recovery_point, stable):
            break
        if seg.max_timestamp >= 0 and now_ms - seg.max_timestamp < config.min_compaction_lag_ms:
            break
        candidates.append(seg)
    if not candidates:
        return None
    first_uncleanable = segments[len(candidates)].base_offset
    if not _due(log, candidates, now_ms):
        return None

    aborted = _AbortedLookup(log.aborted_transactions(log.log_start_offset, first_uncleanable))
    newest: dict[bytes, int] = {}  # key -> offset of its newest record in the candidate segments
    for seg in candidates:
        for batch in _batches(seg):
            if not batch.attributes & CONTROL_BIT and not aborted.covers(batch):
                for record in batch.records():
                    if record.key is not None:
                        newest[record.key] = record.offset

    cleaner = _Cleaner(newest, aborted, log.producer_last_offsets(), now_ms, config.delete_retention_ms)
    rewritten, complete = 0, True
    # Segments are cleaned in order and gathered into groups whose cleaned bytes fit in segment.bytes; each group
    # becomes one segment. So segments shrunk by compaction merge (as Kafka groups them), and at most one
    # group's bytes are held in memory.
    group: list[Segment] = []
    pieces: list[bytes] = []
    size, changed = 0, False
    for seg in candidates:
        seg_pieces, seg_changed = cleaner.clean(seg)
        seg_size = sum(len(piece) for piece in seg_pieces)
        if group and (size + seg_size > config.segment_bytes
                      or seg.next_offset - group[0].base_offset > _MAX_RELATIVE_OFFSET):
            done = _replace(log, group, pieces, changed)
            rewritten, complete = rewritten + (done or 0), complete and done is not None
            group, pieces, size, changed = [], [], 0, False
        group.append(seg)
        pieces.extend(seg_pieces)
        size += seg_size
        changed = changed or seg_changed
    done = _replace(log, group, pieces, changed)
    rewritten, complete = rewritten + (done or 0), complete and done is not None
    # The index follows a round only if every group was replaced (a refused group kept its batches).
    if complete and cleaner.aborted_kept != aborted.below(first_uncleanable):
        log.replace_aborted_transactions(first_uncleanable, cleaner.aborted_kept)
    return Round(rewritten, first_uncleanable)


class _AbortedLookup:
    """The aborted transactions that overlap the compacted range, by producer."""

    def __init__(self, entries: list[AbortedTxn]):
        self.entries = entries  # in marker order
        self.by_producer: dict[int, list[AbortedTxn]] = {}
        for entry in entries:
            self.by_producer.setdefault(entry.producer_id, []).append(entry)

    def _spanning(self, producer_id: int, offset: int) -> AbortedTxn | None:
        """The producer's aborted transaction from whose first offset to whose marker `offset` lies (one
        producer's transactions never overlap)."""
        txns = self.by_producer.get(producer_id, ())
        i = bisect.bisect_left(txns, offset, key=lambda e: e.last_offset)
        return txns[i] if i < len(txns) and txns[i].first_offset <= offset else None

    def covers(self, batch: RecordBatch) -> bool:
        """Whether a data batch belongs to an aborted transaction."""
        return (bool(batch.attributes & TRANSACTIONAL_BIT)
                and self._spanning(batch.producer_id, batch.base_offset) is not None)

    def marker(self, batch: RecordBatch) -> AbortedTxn | None:
        """The aborted transaction whose ABORT marker the control batch is, if any."""
        entry = self._spanning(batch.producer_id, batch.base_offset)
        return entry if entry is not None and entry.last_offset == batch.base_offset else None

    def below(self, offset: int) -> list[AbortedTxn]:
        return [e for e in self.entries if e.last_offset < offset]


class _Cleaner:
    """What one round keeps of each batch, segment after segment, in log order (see the module docstring)."""

    def __init__(self, newest: dict[bytes, int], aborted: _AbortedLookup, last_offsets: dict[int, tuple[int, int]],
                 now_ms: int, delete_retention_ms: int):
        self.newest = newest
        self.aborted = aborted
        self.last_offsets = last_offsets  # producer id -> (epoch, last offset of its last data batch or -1)
        self.now_ms = now_ms
        self.delete_retention_ms = delete_retention_ms
        self.tombstone_horizon = now_ms - delete_retention_ms
        # Producers with a transactional batch read since their last marker -> the first offset this round keeps
        # of their transaction's batches (-1: none is kept).
        self.in_txn: dict[int, int] = {}
        self.aborted_kept: list[AbortedTxn] = []  # the index entries of the markers in the compacted range

    def clean(self, seg: Segment) -> tuple[list[bytes], bool]:
        """The segment's batches as this round keeps them, and whether any changed."""
        pieces, changed = [], False
        for batch in _batches(seg):
            piece = self._marker(batch) if batch.attributes & CONTROL_BIT else self._data(batch)
            if piece is None:
                pieces.append(bytes(batch.buf))
            else:
                pieces.extend(piece)
                changed = True
        return pieces, changed

    def _is_last_of_producer(self, batch: RecordBatch) -> bool:
        """Kafka's rule: the batch holding the producer's last data offset, or, when it has none (its last write
        was a marker that bumped its epoch), its markers of its current epoch."""
        if batch.producer_id < 0 or batch.producer_id not in self.last_offsets:
            return False
        epoch, last_data = self.last_offsets[batch.producer_id]
        if last_data >= 0:
            return batch.last_offset == last_data
        return bool(batch.attributes & CONTROL_BIT) and batch.producer_epoch == epoch

    def _data(self, batch: RecordBatch) -> list[bytes] | None:
        """A data batch's pieces, or None to keep it as it is."""
        records = list(batch.records())
        if self.aborted.covers(batch):
            kept = []
        else:
            expired = batch.max_timestamp < self.tombstone_horizon
            kept = [r for r in records
                    if r.key is None or (self.newest[r.key] == r.offset and not (r.value is None and expired))]
        if self._is_last_of_producer(batch):  # it keeps its whole sequence range
            pieces = None if kept or not records else [_empty(batch)]
        elif records and len(kept) == len(records):
            pieces = None
        else:
            pieces = _rebuild(batch, kept)  # [] for an empty batch that is no producer's last any more
        if batch.attributes & TRANSACTIONAL_BIT:
            first_kept = self.in_txn.get(batch.producer_id, -1)
            if first_kept < 0 and pieces != []:
                first_kept = kept[0].offset if kept and pieces is not None else batch.base_offset
            self.in_txn[batch.producer_id] = first_kept
        return pieces

    def _marker(self, batch: RecordBatch) -> list[bytes] | None:
        """A control batch's pieces ([] removes it), or None to keep it as it is."""
        first_kept = self.in_txn.pop(batch.producer_id, None)  # None: no batch of its transaction was read
        entry = self.aborted.marker(batch)
        if entry is not None and first_kept is not None and first_kept >= 0:
            self.aborted_kept.append(AbortedTxn(entry.producer_id, first_kept, entry.last_offset,
                                                entry.last_stable_offset))
        if first_kept is not None or self._is_last_of_producer(batch):
            return None
        if not batch.attributes & DELETE_HORIZON_BIT:
            return [_with_delete_horizon(batch, self.now_ms + self.delete_retention_ms)]
        return [] if batch.base_timestamp <= self.now_ms else None


def _due(log: CompactableLog, candidates: list[Segment], now_ms: int) -> bool:
    """Whether the compactable segments hold enough dirty data for a round (see the module docstring)."""
    first_dirty = max(log.cleaner_point, log.log_start_offset)
    dirty = [seg for seg in candidates if seg.next_offset > first_dirty]
    if not dirty:
        return False
    dirty_bytes = sum(seg.size for seg in dirty)
    total_bytes = sum(seg.size for seg in candidates)
    if dirty_bytes > log.config.min_cleanable_dirty_ratio * total_bytes:
        return True
    oldest = next(dirty[0].headers(0), None)
    return (oldest is not None and oldest.max_timestamp >= 0
            and now_ms - oldest.max_timestamp > log.config.max_compaction_lag_ms)


def _batches(seg: Segment):
    for header in seg.headers(0):
        yield RecordBatch(memoryview(seg.read(header.position, header.size)))


def _rebuild(batch: RecordBatch, kept) -> list[bytes]:
    """Kept records of one batch as batches of consecutive offsets (offsets inside a batch must be dense)."""
    runs, run = [], []
    for record in kept:
        if run and record.offset != run[-1].offset + 1:
            runs.append(run)
            run = []
        run.append(record)
    if run:
        runs.append(run)
    out = []
    for run in runs:
        first = run[0].offset
        sequence = -1
        if batch.base_sequence >= 0:
            sequence = (batch.base_sequence + first - batch.base_offset) % 2**31
        out.append(build_batch(
            [(r.key, r.value, r.headers) for r in run],
            base_offset=first, timestamps=[r.timestamp for r in run], codec=batch.codec,
            producer_id=batch.producer_id, producer_epoch=batch.producer_epoch, base_sequence=sequence,
            partition_leader_epoch=batch.partition_leader_epoch, attributes=batch.attributes & ~CODEC_MASK,
        ))
    return out


def _empty(batch: RecordBatch) -> bytes:
    """The batch's header alone (no records, no codec), keeping its offsets, producer, epoch and sequences, as
    Kafka's cleaner keeps a producer's last batch."""
    return encode_header(
        b"", attributes=batch.attributes & ~CODEC_MASK, last_offset_delta=batch.last_offset_delta,
        base_timestamp=batch.max_timestamp, max_timestamp=batch.max_timestamp, records_count=0,
        producer_id=batch.producer_id, producer_epoch=batch.producer_epoch, base_sequence=batch.base_sequence,
        base_offset=batch.base_offset, partition_leader_epoch=batch.partition_leader_epoch)


def _with_delete_horizon(batch: RecordBatch, horizon_ms: int) -> bytes:
    """The control batch with a delete horizon (KIP-534: baseTimestamp holds it; records keep their timestamps)."""
    records = list(batch.records())
    return build_batch(
        [(r.key, r.value, r.headers) for r in records], base_offset=batch.base_offset,
        timestamps=[r.timestamp for r in records], base_timestamp=horizon_ms, codec=batch.codec,
        producer_id=batch.producer_id, producer_epoch=batch.producer_epoch, base_sequence=batch.base_sequence,
        partition_leader_epoch=batch.partition_leader_epoch,
        attributes=(batch.attributes & ~CODEC_MASK) | DELETE_HORIZON_BIT)


def _replace(log: CompactableLog, group: list[Segment], pieces: list[bytes], changed: bool) -> int | None:
    """Replace the group by one segment of `pieces`, unless that would change nothing (one segment, nothing
    removed). Returns the number of segments replaced; None if the log refused (the group is gone)."""
    if not changed and len(group) == 1:
        return 0
    return len(group) if log.replace_segments(group, _write_cleaned(log.fs, group, pieces)) else None


def _write_cleaned(fs: FileSystem, group: list[Segment], pieces: list[bytes]) -> str:
    """Write the group's new segment, fsynced, to <first base>.log.cleaned; returns its path."""
    cleaned = group[0].path(CLEANED)
    f = fs.open(cleaned, create=True)
    try:
        f.truncate(0)
        position = 0
        for piece in pieces:
            f.pwrite(piece, position)
            position += len(piece)
        f.fsync()
    finally:
        f.close()
    return cleaned
