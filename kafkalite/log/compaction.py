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

Swap, crash-safe (each arrow ends with an fsync of the file or directory):
  1. write <base>.log.cleaned                         crash: the leftover .cleaned file is deleted on open
  2. rename .log.cleaned -> .log.swap                 commit point: open() completes steps 3-4
  3. remove <base>.index and <base>.timeindex         (so no stale index ever sits next to the new log)
  4. rename .log.swap -> .log                         open() rebuilds the missing indexes from batch headers
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkalite.log.segment import Segment, segment_name
from kafkalite.protocol.record_batch import CODEC_MASK, CONTROL_BIT, RecordBatch, build_batch

if TYPE_CHECKING:
    from kafkalite.log.partition import PartitionLog

CLEANED = ".log.cleaned"
SWAP = ".log.swap"


def finish_interrupted(log: "PartitionLog") -> None:
    """On open: drop unfinished rewrites, complete committed swaps."""
    fs = log.fs
    changed = False
    for name in fs.listdir(log.directory):
        if name.endswith(CLEANED):
            fs.remove(log._path(name))
            changed = True
    for name in fs.listdir(log.directory):
        if name.endswith(SWAP):
            base = int(name[: -len(SWAP)])
            for suffix in (".index", ".timeindex"):
                path = log._path(segment_name(base, suffix))
                if fs.exists(path):
                    fs.remove(path)
            fs.fsync_dir(log.directory)
            fs.rename(log._path(name), log._path(segment_name(base, ".log")))
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

    newest: dict[bytes, int] = {}  # key -> offset of its newest record in the candidate segments
    for seg in candidates:
        for batch in _batches(seg):
            if not batch.attributes & CONTROL_BIT:
                for record in batch.records():
                    if record.key is not None:
                        newest[record.key] = record.offset

    tombstone_horizon = now_ms - config.delete_retention_ms
    rewritten = 0
    for seg in candidates:
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
        if changed and _swap_in(log, seg, pieces):
            rewritten += 1
    return rewritten


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


def _swap_in(log: "PartitionLog", old: Segment, pieces: list[bytes]) -> bool:
    fs = log.fs
    cleaned, swap = old.path(CLEANED), old.path(SWAP)
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
        if old not in log._segments:  # deleted or truncated away meanwhile
            fs.remove(cleaned)
            return False
        fs.rename(cleaned, swap)
        fs.fsync_dir(log.directory)
        for suffix in (".index", ".timeindex"):
            fs.remove(old.path(suffix))
        fs.fsync_dir(log.directory)
        fs.rename(swap, old.path(".log"))
        fs.fsync_dir(log.directory)
        new = Segment(fs, log.directory, old.base_offset, log.config.index_interval_bytes, old.created_ms)
        new.open_files(create=False)
        new.size = position
        new.rebuild_from_headers()
        new.seal_time_index()
        new.flush_indexes()
        new.next_offset = old.next_offset  # keep "ends where the next segment starts"
        log._segments = [new if s is old else s for s in log._segments]
        log._retired.append(old)  # a concurrent read may still use its handle; see PartitionLog.close_retired
    return True
