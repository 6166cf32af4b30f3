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
each (Kafka groups them too), so compacted segments merge instead of piling up. Swap of a group whose first
and last segments have bases F and L, crash-safe (each arrow ends with an fsync of the file or directory):
  1. write F.log.cleaned                              crash: the leftover .cleaned file is deleted on open
  2. rename F.log.cleaned -> F-L.log.swap             commit point: open() completes steps 3-4
  3. remove the group's indexes and its other .logs   (so no stale index or segment sits next to the new log)
  4. rename F-L.log.swap -> F.log                     open() rebuilds the missing indexes from batch headers
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from kafkalite.log.segment import Segment, segment_name
from kafkalite.protocol.record_batch import CODEC_MASK, CONTROL_BIT, RecordBatch, build_batch, crc32c

if TYPE_CHECKING:
    from kafkalite.log.partition import PartitionLog

CLEANED = ".log.cleaned"
SWAP = ".log.swap"
CLEANER_CHECKPOINT = "cleaner.checkpoint"
_CLEANER_POINT = struct.Struct(">qI")  # the cleaner point, CRC-32C of those 8 bytes
_MAX_RELATIVE_OFFSET = 2**31 - 1  # index entries hold offsets relative to the segment's base as int32


def read_cleaner_point(log: "PartitionLog") -> int:
    """The cleaner point saved by the last round, or 0 (everything dirty) if there is none or it is damaged."""
    path = log._path(CLEANER_CHECKPOINT)
    if not log.fs.exists(path):
        return 0
    data = log.fs.read_file(path)
    if len(data) != _CLEANER_POINT.size:
        return 0
    offset, crc = _CLEANER_POINT.unpack(data)
    return offset if crc == crc32c(data[:8]) else 0


def _save_cleaner_point(log: "PartitionLog", offset: int) -> None:
    crc = crc32c(struct.pack(">q", offset))
    log.fs.write_file_atomic(log._path(CLEANER_CHECKPOINT), _CLEANER_POINT.pack(offset, crc))
    log.cleaner_point = offset


def _swap_name(first: Segment, last: Segment) -> str:
    """<first base>-<last base>.log.swap: recovery then knows every segment the swap replaces."""
    return f"{first.base_offset:020d}-{last.base_offset:020d}{SWAP}"


def finish_interrupted(log: "PartitionLog") -> None:
    """On open: drop unfinished rewrites, complete committed swaps."""
    fs = log.fs
    changed = False
    for name in fs.listdir(log.directory):
        if name.endswith(CLEANED):
            fs.remove(log._path(name))
            changed = True
    names = fs.listdir(log.directory)
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
                    fs.remove(log._path(other))
            fs.fsync_dir(log.directory)
            fs.rename(log._path(name), log._path(segment_name(first, ".log")))
            changed = True
    if changed:
        fs.fsync_dir(log.directory)


def compact(log: "PartitionLog", now_ms: int) -> int:
    config = log.config
    segments = log._segments
    candidates: list[Segment] = []
    for seg, following in zip(segments, segments[1:]):
        if following.base_offset > log.recovery_point:
            break
        if seg.max_timestamp >= 0 and now_ms - seg.max_timestamp < config.min_compaction_lag_ms:
            break
        candidates.append(seg)
    if not candidates:
        return 0
    first_uncleanable = segments[len(candidates)].base_offset
    if not _due(log, candidates, now_ms):
        return 0

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
            if (changed or len(group) > 1) and _swap_in(log, group, pieces):
                rewritten += len(group)
            group, pieces, size, changed = [], [], 0, False
        group.append(seg)
        pieces.extend(seg_pieces)
        size += seg_size
        changed = changed or seg_changed
    if (changed or len(group) > 1) and _swap_in(log, group, pieces):
        rewritten += len(group)
    _save_cleaner_point(log, first_uncleanable)
    return rewritten


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


def _due(log: "PartitionLog", candidates: list[Segment], now_ms: int) -> bool:
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


def _swap_in(log: "PartitionLog", group: list[Segment], pieces: list[bytes]) -> bool:
    """Replace the group's segments by one segment of `pieces`, named after the first (see the module docstring)."""
    fs = log.fs
    first = group[0]
    cleaned, swap = first.path(CLEANED), log._path(_swap_name(first, group[-1]))
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
    with log._lock:
        if any(seg not in log._segments for seg in group):  # deleted or truncated away meanwhile
            fs.remove(cleaned)
            return False
        fs.rename(cleaned, swap)
        fs.fsync_dir(log.directory)
        for seg in group:
            for suffix in (".index", ".timeindex"):
                fs.remove(seg.path(suffix))
        for seg in group[1:]:
            fs.remove(seg.path(".log"))
        fs.fsync_dir(log.directory)
        fs.rename(swap, first.path(".log"))
        fs.fsync_dir(log.directory)
        new = Segment(fs, log.directory, first.base_offset, log.config.index_interval_bytes, first.created_ms)
        new.open_files(create=False)
        new.size = position
        new.rebuild_from_headers()
        new.seal_time_index()
        new.flush_indexes()
        new.next_offset = group[-1].next_offset  # keep "ends where the next segment starts"
        at = log._segments.index(first)
        log._segments = log._segments[:at] + [new] + log._segments[at + len(group):]
        log._retired.extend(group)  # a concurrent read may still use their handles; see PartitionLog.close_retired
    return True
