"""Log compaction (cleanup.policy=compact): keep the newest record per key in closed segments.

The only place the log store decodes records (it must read keys). Rules:
  - Only closed segments wholly below the persisted recovery point are rewritten (so recovery never needs to
    validate a compacted segment, whose last offset may end before the next segment's base), and only a prefix
    of them whose newest timestamp is at least min.compaction.lag.ms old.
  - A keyed record is kept if it is the newest record for its key among those segments. Records in the active
    segment are not considered (as in Kafka, they are the "dirty" part the next round will see).
  - A tombstone (null value) that is the newest for its key is dropped once its batch's max timestamp is older
    than delete.retention.ms.
  - Records without a key, control batches and batches left untouched are copied byte for byte. A batch that
    loses records is rebuilt as one batch per run of consecutive kept offsets (same producer id/epoch, codec,
    timestamp type, leader epoch; sequence numbers shifted to match), so every kept record keeps its offset.

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

from typing import NamedTuple, Protocol, Sequence

from kafkalite.log.config import LogConfig
from kafkalite.log.fs import FileSystem
from kafkalite.log.segment import CLEANED, Segment
from kafkalite.protocol.record_batch import CODEC_MASK, CONTROL_BIT, RecordBatch, build_batch

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

    def replace_segments(self, old: Sequence[Segment], cleaned: str) -> bool: ...


class Round(NamedTuple):
    rewritten: int  # segments replaced
    cleaner_point: int  # offsets below it are now compacted: the log saves it


def compact(log: CompactableLog, now_ms: int) -> Round | None:
    """One compaction round if one is due (see the module docstring); None if none is."""
    config = log.config
    segments = log.segments
    candidates: list[Segment] = []
    for seg, following in zip(segments, segments[1:]):
        if following.base_offset > log.recovery_point:
            break
        if seg.max_timestamp >= 0 and now_ms - seg.max_timestamp < config.min_compaction_lag_ms:
            break
        candidates.append(seg)
    if not candidates:
        return None
    first_uncleanable = segments[len(candidates)].base_offset
    if not _due(log, candidates, now_ms):
        return None

    newest: dict[bytes, int] = {}  # key -> offset of its newest record in the candidate segments
    for seg in candidates:
        for batch in _batches(seg):
            if not batch.attributes & CONTROL_BIT:
                for record in batch.records():
                    if record.key is not None:
                        newest[record.key] = record.offset

    tombstone_horizon = now_ms - config.delete_retention_ms
    rewritten = 0
    # Segments are cleaned in order and gathered into groups whose cleaned bytes fit in segment.bytes; each group
    # becomes one segment. So segments shrunk by compaction merge (as Kafka groups them), and at most one
    # group's bytes are held in memory.
    group: list[Segment] = []
    pieces: list[bytes] = []
    size, changed = 0, False
    for seg in candidates:
        seg_pieces, seg_changed = _clean(seg, newest, tombstone_horizon)
        seg_size = sum(len(piece) for piece in seg_pieces)
        if group and (size + seg_size > config.segment_bytes
                      or seg.next_offset - group[0].base_offset > _MAX_RELATIVE_OFFSET):
            rewritten += _replace(log, group, pieces, changed)
            group, pieces, size, changed = [], [], 0, False
        group.append(seg)
        pieces.extend(seg_pieces)
        size += seg_size
        changed = changed or seg_changed
    rewritten += _replace(log, group, pieces, changed)
    return Round(rewritten, first_uncleanable)


def _clean(seg: Segment, newest: dict[bytes, int], tombstone_horizon: int) -> tuple[list[bytes], bool]:
    """The segment's batches with superseded records (and tombstones past the horizon) left out, and whether any
    were."""
    pieces, changed = [], False
    for batch in _batches(seg):
        if batch.attributes & CONTROL_BIT:
            pieces.append(bytes(batch.buf))
            continue
        records = list(batch.records())
        expired = batch.max_timestamp < tombstone_horizon
        kept = [r for r in records
                if r.key is None or (newest[r.key] == r.offset and not (r.value is None and expired))]
        if len(kept) == len(records):
            pieces.append(bytes(batch.buf))
            continue
        changed = True
        pieces.extend(_rebuild(batch, kept))
    return pieces, changed


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


def _replace(log: CompactableLog, group: list[Segment], pieces: list[bytes], changed: bool) -> int:
    """Replace the group by one segment of `pieces`, unless that would change nothing (one segment, nothing
    removed). Returns the number of segments replaced."""
    if not changed and len(group) == 1:
        return 0
    return len(group) if log.replace_segments(group, _write_cleaned(log.fs, group, pieces)) else 0


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
