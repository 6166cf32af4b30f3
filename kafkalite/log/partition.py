"""PartitionLog: the durable log of one partition (a directory of segments), with recovery.

Threading: one owning thread (the broker's event loop) calls everything, except that
  - flush() may run in worker threads at the same time (group commit: concurrent callers share one fsync);
  - housekeep() (retention, compaction, checkpoint) may run in a worker thread while the owner goes on
    reading, provided the owner holds back everything else that changes this log (appends, DeleteRecords,
    truncation, close) until it returns. Segments it removes are retired, not closed: a read on the owning
    thread may still hold one. The owner closes them afterwards with close_retired().
Segment lists are copy-on-write, so reads never take the lock.

Files in the partition directory (layouts in docs/storage.md):
  <base>.log / .index / .timeindex   segments (segment.py)
  <offset>.snapshot                  idempotent producer state as of <offset> (producer_state.py)
  <base>.txnindex                    aborted transactions whose ABORT marker is in that segment (txn_index.py)
  partition.checkpoint               log start offset, recovery point, clean-shutdown flag
  leader-epoch-checkpoint            leader epoch -> its first offset (leader_epoch.py)
  cleaner.checkpoint                 where the last compaction round ended (compaction.py)
  <base>.log.cleaned, <first>-<last>.log.swap   compaction in progress (segment.py: replacing segments)
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from kafkalite.log import compaction
from kafkalite.log.checkpoint import (
    PartitionCheckpoint, read_cleaner_point, read_leader_epochs, read_partition_checkpoint, write_cleaner_point,
    write_partition_checkpoint,
)
from kafkalite.log.config import LogConfig, INT_MAX
from kafkalite.log.errors import (
    CorruptRecord, InvalidTimestamp, InvalidTxnState, LogError, OffsetOutOfRange, RecordTooLarge, StorageError,
    UnexpectedAppendOffset,
)
from kafkalite.log.fs import FileSystem
from kafkalite.log.leader_epoch import LeaderEpochCache
from kafkalite.log.producer_state import (ActiveProducer, ProducerStateTable, is_idempotent, is_marker,
                                          snapshot_path)
from kafkalite.log.txn_index import AbortedTxn, AbortedTxnIndex
from kafkalite.log.segment import (
    CorruptSegment, Segment, commit_swap, finish_interrupted_swaps, header_of, segment_name,
)
from kafkalite.protocol.errors import DecodeError
from kafkalite.protocol.messages.data.control_record import COMMIT
from kafkalite.protocol.record_batch import RecordBatch, iter_batches, set_base_offset, stamp_log_append_time

SNAPSHOTS_KEPT = 2


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What append() did. duplicate=True: an idempotent retry of a batch already in the log; nothing was
    written and base_offset/last_offset are the original batch's. log_append_time is the broker timestamp
    stamped on the batch when message.timestamp.type=LogAppendTime, else -1."""

    base_offset: int
    last_offset: int
    duplicate: bool = False
    log_append_time: int = -1


@dataclass(frozen=True, slots=True)
class RecoveryInfo:
    """How open() found the partition."""

    clean: bool  # a clean-shutdown checkpoint was found and trusted: no log data was read
    segments: int
    segments_scanned: int  # segments validated batch by batch (CRC)
    truncated_bytes: int  # torn/corrupt bytes cut off the tail, plus bytes of segments deleted after them
    seconds: float


class PartitionLog:
    """The log of one partition. Use PartitionLog.open(); see the module docstring for threading."""

    def __init__(self, directory: str, config: LogConfig, fs: FileSystem, clock: Callable[[], int]):
        self.directory = directory
        self.config = config
        self.fs = fs
        self.clock = clock
        self._segments: tuple[Segment, ...] = ()  # copy-on-write: replaced, never mutated in place
        self._lock = threading.RLock()  # guards segment list swaps and flush bookkeeping
        self._flush_lock = threading.Lock()  # one fsync round at a time; waiters then find their data flushed
        self._log_start = 0
        self._log_end = 0
        self._high_watermark = 0
        self._flushed = 0
        self._recovery_point = 0
        self._truncations = 0  # bumped by truncate_to so a concurrent flush does not claim truncated offsets
        self._dir_dirty = False  # directory entries created since the last fsync_dir
        self._unflushed_messages = 0
        self._first_unflushed_ms: int | None = None
        self._producers = ProducerStateTable()
        # producer id -> the guard of a verification under way with its transaction coordinator (KIP-890); a
        # marker for the producer removes it, so a batch verified before its transaction ended is refused
        self._verifications: dict[int, object] = {}
        self._snapshot_offset = -1
        self._retired: list[Segment] = []  # removed from the log; closed by close_retired() on the owning thread
        self._failed: StorageError | None = None
        self._closed = False
        self.recovery: RecoveryInfo | None = None
        self.high_watermark_follows_log_end = True  # single broker: HW == LEO; replication turns this off
        self._cleaner_point = 0  # compaction: offsets below it were compacted by the last round
        self._epochs = LeaderEpochCache(fs, directory)
        self._aborted = AbortedTxnIndex(fs, directory)

    # ================================================================================================ opening

    @classmethod
    def open(cls, directory: str, config: LogConfig, fs: FileSystem | None = None,
             clock: Callable[[], int] | None = None) -> "PartitionLog":
        """Open (creating if needed) and recover the partition in `directory`.

        After a clean shutdown only metadata and index files are read. Otherwise the segments from the one
        holding the recovery point on are validated batch by batch; the log is cut at the first invalid batch
        (and later segments deleted), indexes are rebuilt, and producer state is rebuilt from the newest
        snapshot plus the batches after it. Raises StorageError on I/O errors."""
        log = cls(directory, config, fs or FileSystem(), clock or _now_ms)
        try:
            log._open()
        except OSError as e:
            log._close_files()
            raise StorageError(f"cannot open log {directory}: {e}") from e
        return log

    def _open(self) -> None:
        started = time.monotonic()
        self.fs.makedirs(self.directory)
        bases = self._finish_interrupted_work()
        ckpt = read_partition_checkpoint(self.fs, self.directory)
        self._segments = self._open_segments(bases, ckpt)
        clean = (ckpt is not None and ckpt.clean and ckpt.active_base == self._segments[-1].base_offset
                 and ckpt.active_size == self._segments[-1].size)
        recovery_point = ckpt.log_end_offset if clean else (ckpt.recovery_point if ckpt is not None else 0)
        scanned, truncated = self._recover_segments(clean, recovery_point, ckpt)
        self._restore_state(ckpt, recovery_point)
        if ckpt is None and self._log_end == 0:
            # Brand new. Nothing to make durable yet: if a crash loses its files, the next open creates them again
            # (the topic itself is durable in meta.json). The first flush fsyncs the segment and the directory,
            # whose entry for the segment may not be durable even when the file was already there.
            self._dir_dirty = True
        elif not clean:
            # Make what recovery wrote durable and move the recovery point to the log end.
            self.checkpoint()
        # After a clean open the clean checkpoint stays (no fsync at startup). It remains true until the
        # active segment changes size or a new segment appears, and open() checks exactly that: appends lost
        # in a later crash leave the file at its clean size, i.e. with exactly the clean contents. Every
        # other change (truncate_to, delete_records, checkpoint) rewrites the checkpoint as unclean.
        self.recovery = RecoveryInfo(clean, len(self._segments), scanned, truncated, time.monotonic() - started)

    def _finish_interrupted_work(self) -> list[int]:
        """Step 1: complete or drop compaction swaps, delete temp files and index files whose segment is gone.
        Returns the segments' base offsets, ascending."""
        fs = self.fs
        finish_interrupted_swaps(fs, self.directory)
        names = fs.listdir(self.directory)
        for name in names:
            if name.endswith(".tmp"):
                fs.remove(self._path(name))
        bases = sorted(int(n[:-4]) for n in names if n.endswith(".log") and n[:-4].isdigit())
        for name in names:  # index files whose segment is gone (a crash while deleting it)
            stem, _, suffix = name.partition(".")
            if suffix in ("index", "timeindex") and stem.isdigit() and int(stem) not in bases:
                fs.remove(self._path(name))
        return bases

    def _open_segments(self, bases: list[int], ckpt: PartitionCheckpoint | None) -> tuple[Segment, ...]:
        """Step 2: open every segment's files (an empty first segment if there are none); nothing is read yet."""
        now = self.clock()
        if not bases:
            bases = [ckpt.log_start_offset if ckpt else 0]
            self.fs.open(self._path(segment_name(bases[0], ".log")), create=True).close()
            self._dir_dirty = True
        segments = []
        for base in bases:
            seg = Segment(self.fs, self.directory, base, self.config.index_interval_bytes, now)
            seg.open_files(create=False)
            seg.size = seg.log.size()
            segments.append(seg)
        return tuple(segments)

    def _recover_segments(self, clean: bool, recovery_point: int, ckpt: PartitionCheckpoint | None) -> tuple[int, int]:
        """Step 3: trust segments below the recovery point (or all, after a clean shutdown) and load their indexes;
        validate the rest batch by batch, cutting at the first invalid batch and dropping the segments after a
        cut or a gap. Returns (segments validated, bytes truncated)."""
        segments = self._segments
        scanned = truncated = 0
        for i, seg in enumerate(segments):
            following = segments[i + 1].base_offset if i + 1 < len(segments) else None
            trusted = clean or (following is not None and following <= recovery_point)
            if trusted:
                seg.next_offset = following if following is not None else ckpt.log_end_offset
                if seg.load_indexes():
                    continue
                try:
                    seg.rebuild_from_headers()
                    continue
                except CorruptSegment:
                    pass  # fall through: validate it batch by batch
            scanned += 1
            cut = seg.recover(validate_from=recovery_point if recovery_point > seg.base_offset else None)
            truncated += cut
            # Compacted segments may end before the next base; they are always below the recovery point.
            if following is not None and (cut or (not trusted and seg.next_offset != following)):
                # A gap or a cut before the next segment: later data cannot follow densely. Drop it.
                for later in segments[i + 1:]:
                    truncated += later.size
                    later.delete_files()
                self._segments = segments = segments[: i + 1]
                self.fs.fsync_dir(self.directory)
                break
        if not clean:
            # The segments not yet sealed lost their final time index entry; re-seal closed ones.
            for seg in segments[:-1]:
                seg.seal_time_index()
        return scanned, truncated

    def _restore_state(self, ckpt: PartitionCheckpoint | None, recovery_point: int) -> None:
        """Step 4: offsets from the recovered segments and the checkpoint; cleaner point, leader epochs and
        producer state cut to the recovered log."""
        self._log_end = self._segments[-1].next_offset
        start = max(ckpt.log_start_offset if ckpt else 0, self._segments[0].base_offset)
        self._log_start = min(start, self._log_end)
        self._high_watermark = self._log_end
        self._flushed = self._recovery_point = min(recovery_point, self._log_end)
        self._cleaner_point = min(read_cleaner_point(self.fs, self.directory), self._log_end)
        self._load_leader_epochs()
        self._load_producer_state()

    def _load_leader_epochs(self) -> None:
        """The leader-epoch checkpoint, cut to the recovered log. Rebuilt from the batches' partitionLeaderEpoch
        (one walk over every batch header) when it is missing or damaged while the log holds batches: a log
        written before the file existed, or a bad sector."""
        entries = read_leader_epochs(self.fs, self.directory)
        if entries is None and self._log_end > self._log_start:
            self._epochs = LeaderEpochCache(self.fs, self.directory, self._epochs_from_batches())
            self._epochs.save()
        else:
            self._epochs = LeaderEpochCache(self.fs, self.directory, tuple(entries or ()))
        self._epochs.truncate_from_end(self._log_end)  # epochs recorded for batches a crash took
        self._epochs.truncate_from_start(self._log_start)

    def _epochs_from_batches(self) -> list[tuple[int, int]]:
        entries: list[tuple[int, int]] = []
        try:
            for seg in self._segments:
                for header in seg.headers(0):
                    epoch = header.partition_leader_epoch
                    if epoch > (entries[-1][0] if entries else -1) and header.next_offset > self._log_start:
                        entries.append((epoch, max(header.base_offset, self._log_start)))
        except CorruptSegment:
            pass  # recovery validated these segments; keep what was found if one is damaged after all
        return entries

    def _load_producer_state(self) -> None:
        """Newest valid snapshot at or below the log end, then replay batch headers after it; then forget the
        producers that expired (producer_id_expiration_ms) while the log was closed."""
        now = self.clock()
        offsets = sorted((int(n[:-9]) for n in self.fs.listdir(self.directory)
                          if n.endswith(".snapshot") and n[:-9].isdigit()), reverse=True)
        self._producers = ProducerStateTable()
        replay_from = self._log_start
        self._snapshot_offset = -1
        for offset in offsets:
            path = snapshot_path(self.directory, offset)
            if offset > self._log_end:
                self.fs.remove(path)  # describes batches that are gone
                continue
            try:
                snap_offset, table = ProducerStateTable.decode(self.fs.read_file(path), now)
            except ValueError:
                self.fs.remove(path)
                continue
            if snap_offset == offset:
                self._producers, replay_from, self._snapshot_offset = table, max(offset, self._log_start), offset
                break
        # The aborted-transaction index: entries from the replayed range are rebuilt from their markers.
        bases = [seg.base_offset for seg in self._segments]
        self._aborted.load(self._log_start)
        self._aborted.truncate_from(replay_from, bases)
        for seg in self._segments:  # none is left to replay when the snapshot is at the log end
            if seg.next_offset <= replay_from:
                continue
            position, _ = seg.position_hint(replay_from)
            for header in seg.headers(position):
                if header.base_offset >= replay_from and is_idempotent(header):
                    # The append time is not stored, and a batch's own timestamp is the producer's clock (which
                    # may be days behind when old data is replayed into Kafka): count replayed batches as
                    # appended now, so a retry after a crash is always deduplicated. Expiry is only delayed.
                    self._producers.update(header, now)
                elif header.base_offset >= replay_from and is_marker(header):
                    self._end_transaction(header, *_marker_of(self._records_at(seg, header)), now,
                                          seg.base_offset)
        self._expire_producers(now)

    def _expire_producers(self, now_ms: int) -> None:
        """Forget producers whose last batch is older than producer_id_expiration_ms (Kafka's
        producer.id.expiration.ms): a later batch of theirs is accepted at any sequence, as from a new producer."""
        if self._producers.remove_expired(now_ms - self.config.producer_id_expiration_ms):
            self._snapshot_offset = -1  # the newest snapshot still holds them: the next checkpoint/close rewrites it

    # ================================================================================================ properties

    @property
    def log_start_offset(self) -> int:
        return self._log_start

    @property
    def log_end_offset(self) -> int:
        return self._log_end

    @property
    def high_watermark(self) -> int:
        return self._high_watermark

    def set_high_watermark(self, offset: int) -> None:
        """For replication: set HW explicitly (call after setting high_watermark_follows_log_end = False)."""
        self._high_watermark = max(self._log_start, min(offset, self._log_end))

    @property
    def flushed_offset(self) -> int:
        """Offsets below this are fsynced (durable against power loss)."""
        return self._flushed

    @property
    def recovery_point(self) -> int:
        return self._recovery_point

    @property
    def segments(self) -> tuple[Segment, ...]:
        """The segments, oldest first, as a snapshot (the log replaces its tuple, never changes it). Read-only:
        change them only through the log (append, roll, retention, truncate_to, replace_segments)."""
        return self._segments

    @property
    def cleaner_point(self) -> int:
        """Compaction: offsets below it were compacted by the last round (saved in cleaner.checkpoint)."""
        return self._cleaner_point

    @property
    def latest_epoch(self) -> int:
        """The newest leader epoch that wrote to this log (leader-epoch checkpoint), or -1."""
        return self._epochs.latest_epoch

    @property
    def leader_epochs(self) -> tuple[tuple[int, int], ...]:
        """(epoch, start offset) of every leader epoch still in the log, oldest first."""
        return self._epochs.entries

    def epoch_end_offset(self, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (the largest epoch <= `epoch`, the offset where it ended); the latest epoch ends
        at the log end; (-1, -1) for -1 or an epoch newer than any here. See LeaderEpochCache.end_offset_for."""
        return self._epochs.end_offset_for(epoch, self._log_end)

    def assign_leader_epoch(self, epoch: int) -> None:
        """On becoming leader at `epoch`: record that it starts at the log end (ignored unless newer than the
        latest epoch). Durable before it returns."""
        with self._lock:
            self._check_writable()
            self._assign_epoch(epoch, self._log_end)

    def _assign_epoch(self, epoch: int, start_offset: int) -> None:
        if epoch > self._epochs.latest_epoch:
            try:
                self._epochs.assign(epoch, start_offset)
            except OSError as e:
                raise StorageError(f"cannot save the leader epoch of {self.directory}: {e}") from e

    @property
    def size_bytes(self) -> int:
        return sum(seg.size for seg in self._segments)

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def failed(self) -> bool:
        """True after a write-path I/O error that left the log in an unknown state (reopen to recover)."""
        return self._failed is not None

    # ================================================================================================ append

    def append(self, batch, leader_epoch: int = 0, now_ms: int | None = None,
               verification_guard: object | None = None) -> AppendResult:
        """Append ONE validated v2 batch (a writable buffer; the caller checked magic, CRC, length and
        baseOffset == 0). Assigns offsets by rewriting baseOffset and partitionLeaderEpoch in place, and for
        LogAppendTime also maxTimestamp + attributes (recomputing the CRC). Writes through to the OS, no fsync
        (unless flush.messages is reached). Records are never decoded. A leader_epoch newer than latest_epoch is
        first recorded in the leader-epoch checkpoint (durably: its one write costs two fsyncs; the leader normally
        records it on taking over, with assign_leader_epoch, so appends do not pay it).

        A transactional batch verified with its coordinator passes the `verification_guard` begin_verification
        gave; InvalidTxnState if a marker for its producer was appended since (its transaction ended meanwhile).

        Raises RecordTooLarge, InvalidTimestamp, CorruptRecord, InvalidProducerEpoch, OutOfOrderSequence,
        InvalidTxnState or StorageError (nothing was stored). An idempotent retry returns
        AppendResult(duplicate=True)."""
        self._check_writable()
        view = memoryview(batch)
        if view.readonly:
            raise TypeError("append needs a writable buffer (bytearray or writable memoryview)")
        try:
            parsed = RecordBatch(view)
        except DecodeError as e:
            raise CorruptRecord(str(e)) from None
        config = self.config
        if parsed.size > config.max_message_bytes:
            raise RecordTooLarge(f"batch of {parsed.size} bytes exceeds max.message.bytes {config.max_message_bytes}")
        now = self.clock() if now_ms is None else now_ms
        if not config.log_append_time:
            low, high = config.timestamp_bounds(now)
            for ts in (parsed.base_timestamp, parsed.max_timestamp):
                if ts >= 0 and not low <= ts <= high:
                    raise InvalidTimestamp(f"timestamp {ts} is outside [{low}, {high}] for this topic")
        header = header_of(parsed, 0)
        idempotent = is_idempotent(header)
        if idempotent:
            original = self._producers.check(header)
            if original is not None:
                return AppendResult(original.base_offset, original.last_offset, duplicate=True)
        if verification_guard is not None and self._verifications.get(header.producer_id) is not verification_guard:
            raise InvalidTxnState(f"the transaction of producer {header.producer_id} ended while its partition "
                                  "was being verified")
        marker = is_marker(header)
        if marker:  # only the broker appends control batches: the produce path refuses them from clients
            commit, coordinator_epoch = _marker_of(parsed.records())
            self._producers.check_marker(header, coordinator_epoch)

        append_time = -1
        with self._lock:
            self._check_writable()
            seg = self._roll_if_needed(header.size, header.last_offset - header.base_offset, now)
            base = self._log_end
            self._assign_epoch(leader_epoch, base)  # a new epoch is recorded before its first batch is written
            set_base_offset(view, base, leader_epoch)
            if config.log_append_time:
                append_time = now
                stamp_log_append_time(view, now)
            header = replace(header, base_offset=base, last_offset=base + parsed.last_offset_delta,
                             max_timestamp=append_time if append_time >= 0 else header.max_timestamp,
                             position=seg.size)
            self._write_batch(seg, view, header, now)
            flush_now = self._unflushed_messages >= config.flush_messages
        if verification_guard is not None:
            self._verifications.pop(header.producer_id, None)  # its transaction is open here now
        if idempotent:
            self._producers.update(header, now)
        elif marker:
            self._end_transaction(header, commit, coordinator_epoch, now, seg.base_offset)
        if flush_now:
            self.flush()
        return AppendResult(base, header.last_offset, False, append_time)

    def append_as_follower(self, records) -> AppendResult:
        """Append batches fetched from the leader exactly as the leader stored them: its offsets, leader epochs
        and timestamps; nothing is rewritten. `records` holds one or more whole v2 batches, each intact (magic 2,
        batchLength, CRC-32C; else CorruptRecord) and no larger than max.message.bytes (RecordTooLarge), none
        starting below the log end or below where the previous one ended (else UnexpectedAppendOffset: the
        fetcher truncates or fetches from the log end). A batch may start past that: a compacted leader's log
        has gaps, and a follower fetching from inside one gets the next batch after it (Kafka refuses only an
        offset below the log end). Nothing is written unless all of them pass.

        A batch of a newer leader epoch is recorded in the leader-epoch checkpoint before it is written, and
        producer state follows the batches, so a producer's retry after a failover is still deduplicated.
        StorageError: the batch that failed and those after it were not stored (earlier ones were)."""
        self._check_writable()
        try:
            batches = list(iter_batches(records))
        except DecodeError as e:
            raise CorruptRecord(str(e)) from None
        if not batches:
            raise CorruptRecord("no record batch to append")
        expected = self._log_end
        for parsed in batches:
            if parsed.base_offset < expected:
                raise UnexpectedAppendOffset(
                    f"batch at offset {parsed.base_offset} starts below where {self.directory} ends ({expected})")
            if parsed.last_offset_delta < 0 or not parsed.crc_ok():
                raise CorruptRecord(f"batch at offset {parsed.base_offset} is damaged (CRC or lastOffsetDelta)")
            if parsed.size > self.config.max_message_bytes:
                raise RecordTooLarge(f"batch of {parsed.size} bytes exceeds max.message.bytes "
                                     f"{self.config.max_message_bytes}")
            expected = parsed.next_offset
        now = self.clock()
        with self._lock:
            self._check_writable()
            for parsed in batches:
                self._assign_epoch(parsed.partition_leader_epoch, parsed.base_offset)
                # The offsets the segment must cover reach from the log end to the batch's last (past a gap).
                seg = self._roll_if_needed(parsed.size, parsed.next_offset - 1 - self._log_end, now)
                header = header_of(parsed, seg.size)
                self._write_batch(seg, parsed.buf, header, now)
                if is_idempotent(header):
                    self._producers.update(header, now)
                elif is_marker(header):
                    self._end_transaction(header, *_marker_of(parsed.records()), now, seg.base_offset)
            flush_now = self._unflushed_messages >= self.config.flush_messages
        if flush_now:
            self.flush()
        return AppendResult(batches[0].base_offset, batches[-1].last_offset)

    def _end_transaction(self, header, commit: bool, coordinator_epoch: int, now: int, segment_base: int) -> None:
        """A marker is in the log: its producer's transaction ends; an aborted one goes into the index."""
        first = self._producers.end_transaction(header, now, coordinator_epoch)
        self._verifications.pop(header.producer_id, None)
        if not commit and first >= 0:
            unstable = self._producers.first_unstable_offset()
            lso = header.next_offset if unstable is None else min(unstable, header.next_offset)
            try:
                self._aborted.append(AbortedTxn(header.producer_id, first, header.base_offset, lso), segment_base)
            except OSError as e:  # the marker is written; recovery rebuilds the entry from it
                raise StorageError(f"cannot write the aborted-transaction index of {self.directory}: {e}") from e

    # ================================================================================================ transactions

    def begin_verification(self, producer_id: int) -> object:
        """Before asking the coordinator whether this partition is in the producer's transaction: the guard to
        append its batch with once the answer is yes (KIP-890's VerificationGuard)."""
        guard = self._verifications[producer_id] = object()
        return guard

    def end_verification(self, producer_id: int, guard: object) -> None:
        """The verification failed: its guard is dropped (nothing will be appended with it)."""
        if self._verifications.get(producer_id) is guard:
            del self._verifications[producer_id]

    def has_open_transaction(self, producer_id: int, producer_epoch: int) -> bool:
        """Whether the producer, at this epoch, has a transaction open here (a batch and no marker yet)."""
        entry = self._producers.producers.get(producer_id)
        return entry is not None and entry.epoch == producer_epoch and entry.txn_first_offset >= 0

    def first_unstable_offset(self) -> int | None:
        """The first offset of the oldest transaction still open here (no marker yet), or None."""
        return self._producers.first_unstable_offset()

    def active_producers(self) -> list[ActiveProducer]:
        """The producers whose state this partition keeps (DescribeProducers)."""
        return self._producers.active()

    def aborted_transactions(self, start: int, end: int) -> list[AbortedTxn]:
        """The aborted transactions that overlap [start, end): what a read_committed fetch of that range needs."""
        return self._aborted.overlapping(start, end)

    def producer_last_offsets(self) -> dict[int, tuple[int, int]]:
        """Producer id -> (epoch, last offset of its last data batch or -1), for the producers this log still
        knows: compaction keeps those batches (compaction.py)."""
        return self._producers.last_offsets()

    def replace_aborted_transactions(self, below: int, entries: list[AbortedTxn]) -> None:
        """Compaction's update of the aborted-transaction index: the entries whose marker is below `below`."""
        with self._lock:
            self._aborted.replace_below(below, entries, [seg.base_offset for seg in self._segments])

    def _write_batch(self, seg: Segment, data, header, now: int) -> None:
        """Write one batch at the log end (under the lock); on an I/O error roll back and raise StorageError."""
        saved = seg.save_state()
        try:
            seg.append(data, header)
        except OSError as e:
            self._rollback(seg, saved, e)
        self._log_end = header.next_offset
        if self.high_watermark_follows_log_end:
            self._high_watermark = self._log_end
        self._unflushed_messages += max(header.records_count, 1)
        if self._first_unflushed_ms is None:
            self._first_unflushed_ms = now

    def _check_writable(self) -> None:
        if self._closed:
            raise StorageError(f"log {self.directory} is closed")
        if self._failed is not None:
            raise StorageError(f"log {self.directory} is offline after an I/O error: {self._failed}")

    def _rollback(self, seg: Segment, saved, error: OSError):
        """Undo a partial append so the file ends at the last whole batch; if even that fails, go offline."""
        try:
            seg.restore_state(saved)
        except OSError as e2:
            self._failed = StorageError(f"{error}; then rollback failed: {e2}")
        raise StorageError(f"append to {self.directory} failed: {error}") from error

    def _roll_if_needed(self, batch_size: int, offset_delta: int, now: int) -> Segment:
        seg = self._segments[-1]
        config = self.config
        if seg.size == 0:
            return seg
        if not (seg.size + batch_size > config.segment_bytes
                or now - seg.created_ms >= config.segment_ms
                or self._log_end + offset_delta - seg.base_offset > INT_MAX
                or seg.index_full(config.segment_index_bytes)):
            return seg
        return self.roll(now)

    def roll(self, now_ms: int | None = None) -> Segment:
        """Close the active segment (sealing its time index) and start a new one at the log end."""
        with self._lock:
            old = self._segments[-1]
            if old.size == 0:
                return old
            try:
                old.seal_time_index()
                seg = Segment(self.fs, self.directory, self._log_end, self.config.index_interval_bytes,
                              self.clock() if now_ms is None else now_ms)
                seg.open_files(create=True)
            except OSError as e:
                raise StorageError(f"cannot roll a new segment in {self.directory}: {e}") from e
            self._dir_dirty = True
            self._segments = self._segments + (seg,)
            return seg

    # ================================================================================================ flush

    def flush(self) -> int:
        """fsync everything appended so far; returns the offset below which data is durable.

        Safe to call from worker threads while the owning thread appends. Group commit: a caller that finds
        its data already flushed by a concurrent call returns without another fsync."""
        with self._lock:
            target = self._log_end
        with self._flush_lock:
            with self._lock:
                if self._flushed >= target:
                    return self._flushed
                if self._failed is not None:
                    raise StorageError(f"log {self.directory} is offline: {self._failed}")
                target = self._log_end
                generation = self._truncations
                segments = [s for s in self._segments if s.next_offset > self._flushed or s.size == 0]
                dir_dirty, self._dir_dirty = self._dir_dirty, False
                unflushed = self._unflushed_messages
            try:
                for seg in segments:
                    try:
                        seg.flush_log()
                    except (OSError, ValueError):
                        if seg.closed:
                            continue  # deleted or replaced meanwhile: nothing left to make durable
                        raise
                if dir_dirty:
                    self.fs.fsync_dir(self.directory)
            except OSError as e:
                # After a failed fsync the kernel may have dropped the dirty pages: only recovery knows.
                with self._lock:
                    self._dir_dirty = self._dir_dirty or dir_dirty
                    self._failed = StorageError(f"fsync failed: {e}")
                raise StorageError(f"fsync of {self.directory} failed: {e}") from e
            with self._lock:
                if generation == self._truncations and target > self._flushed:
                    self._flushed = target
                    self._unflushed_messages = max(0, self._unflushed_messages - unflushed)
                    if self._unflushed_messages == 0:
                        self._first_unflushed_ms = None
                return self._flushed

    def flush_due(self, now_ms: int) -> bool:
        """Whether flush.ms (or flush.messages) asks for a flush now."""
        first = self._first_unflushed_ms
        return (self._log_end > self._flushed and
                ((first is not None and now_ms - first >= self.config.flush_ms)
                 or self._unflushed_messages >= self.config.flush_messages))

    def checkpoint(self) -> None:
        """Make a recovery point: flush, fsync index files, snapshot producer state, persist the recovery point.

        A later unclean open validates only segments from the one holding this point on. Call it periodically
        from the owning thread (it does a few fsyncs)."""
        self._check_writable()
        self.flush()
        try:
            for seg in self._segments:
                seg.flush_indexes()
            end = self._log_end
            if end == self._flushed and end != self._snapshot_offset:
                self._write_snapshot(end)
            self._recovery_point = self._flushed
            self._write_checkpoint(clean=False)
        except OSError as e:
            raise StorageError(f"checkpoint of {self.directory} failed: {e}") from e

    def _write_snapshot(self, offset: int) -> None:
        self.fs.write_file_atomic(snapshot_path(self.directory, offset), self._producers.encode(offset))
        self._snapshot_offset = offset
        offsets = sorted(int(n[:-9]) for n in self.fs.listdir(self.directory)
                         if n.endswith(".snapshot") and n[:-9].isdigit())
        for old in offsets[:-SNAPSHOTS_KEPT]:
            self.fs.remove(snapshot_path(self.directory, old))

    def _write_checkpoint(self, clean: bool) -> None:
        active = self._segments[-1]
        write_partition_checkpoint(self.fs, self.directory, PartitionCheckpoint(
            self._log_start, self._recovery_point, clean, self._log_end, active.base_offset, active.size))

    # ================================================================================================ reading

    def read(self, offset: int, max_bytes: int, max_offset: int | None = None) -> list[memoryview]:
        """Whole batches from the one holding `offset`, up to max_bytes (but at least one batch), from a single
        segment, and only batches that end below max_offset (default: the log end; consumers pass the high
        watermark). As in Kafka, where the limit is the position of max_offset's batch, a batch holding max_offset
        is not returned: the high watermark lies on a batch boundary, so this only matters for a limit inside a
        batch. [] at or beyond the limit. Raises OffsetOutOfRange outside [log_start_offset, log_end_offset]."""
        if offset < self._log_start or offset > self._log_end:
            raise OffsetOutOfRange(
                f"offset {offset} is outside [{self._log_start}, {self._log_end}] of {self.directory}")
        limit = self._log_end if max_offset is None else min(max_offset, self._log_end)
        if offset >= limit:
            return []
        segments = self._segments
        i = max(0, bisect.bisect_right(segments, offset, key=_base_of) - 1)
        try:
            for seg in segments[i:]:
                if seg.base_offset >= limit:
                    break
                found = self._read_segment(seg, offset, max_bytes, limit)
                if found is not None:
                    return [found] if found else []
        except OSError as e:
            raise StorageError(f"read from {self.directory} failed: {e}") from e
        return []

    def _read_segment(self, seg: Segment, offset: int, max_bytes: int, limit: int) -> memoryview | None:
        for attempt in (0, 1):
            position, _ = seg.position_hint(offset)
            try:
                return seg.read_batches(position, offset, max_bytes, limit)
            except CorruptSegment:
                if attempt == 0 and position != 0:
                    seg.rebuild_from_headers()  # a stale or damaged index sent us to a non-boundary
                    continue
                raise StorageError(f"corrupt segment {seg.path('.log')} at or after position {position}")
        return None

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with timestamp >= `timestamp`, or None if there is none.
        Finds the batch from the time index and its headers, then decodes that one batch for the exact record."""
        for seg in self._segments:
            if seg.max_timestamp < timestamp:
                continue
            start = max(seg.time_hint(timestamp), self._log_start)
            position, _ = seg.position_hint(start)
            for header in seg.headers(position):
                if header.last_offset >= self._log_start and header.max_timestamp >= timestamp:
                    for record in self._records_at(seg, header):
                        if record.offset >= self._log_start and record.timestamp >= timestamp:
                            return record.offset, record.timestamp
                    return max(header.base_offset, self._log_start), header.max_timestamp
        return None

    def max_timestamp_offset(self) -> tuple[int, int]:
        """(offset, timestamp) of the record with the largest timestamp (ListOffsets -3); (-1, -1) if none."""
        best = None
        for seg in self._segments:
            if seg.max_timestamp >= 0 and (best is None or seg.max_timestamp > best.max_timestamp):
                best = seg
        if best is None:
            return -1, -1
        position, _ = best.position_hint(best.offset_of_max_timestamp)
        for header in best.headers(position):
            if header.last_offset >= best.offset_of_max_timestamp:
                for record in self._records_at(best, header):
                    if record.timestamp == best.max_timestamp:
                        return record.offset, record.timestamp
                break
        return best.offset_of_max_timestamp, best.max_timestamp

    @staticmethod
    def _records_at(seg: Segment, header):
        try:
            yield from RecordBatch(memoryview(seg.read(header.position, header.size))).records()
        except DecodeError:
            return

    # ================================================================================================ deleting

    def delete_records(self, offset: int) -> int:
        """DeleteRecords: move the log start offset up to `offset` (-1: the high watermark), persist it, and
        delete segments wholly below it. Returns the new log start offset."""
        self._check_writable()
        if offset == -1:
            offset = self._high_watermark
        if offset < 0 or offset > self._high_watermark:
            raise OffsetOutOfRange(f"cannot delete records up to {offset}: high watermark is {self._high_watermark}")
        if offset <= self._log_start:
            return self._log_start
        with self._lock:
            self._log_start = offset
            try:
                self._write_checkpoint(clean=False)
                self._epochs.truncate_from_start(offset)
                self._delete_leading_segments(self._count_breached_segments())
            except OSError as e:
                raise StorageError(f"delete records in {self.directory} failed: {e}") from e
        self.close_retired()  # on the owning thread no read is in progress
        return self._log_start

    def _count_breached_segments(self) -> int:
        segments = self._segments
        n = 0
        while n + 1 < len(segments) and segments[n + 1].base_offset <= self._log_start:
            n += 1
        return n

    def apply_retention(self, now_ms: int) -> int:
        """Delete whole closed segments past retention.ms / retention.bytes (cleanup.policy contains delete),
        and those wholly below the log start offset; forget expired producers (whatever the cleanup.policy).
        Returns the number of segments deleted."""
        self._check_writable()
        config = self.config
        segments = self._segments
        n = self._count_breached_segments()
        if config.delete:
            excess = self.size_bytes - config.retention_bytes if config.retention_bytes >= 0 else -1
            excess -= sum(s.size for s in segments[:n])
            while n < len(segments) - 1:  # never the active segment
                seg = segments[n]
                expired = (config.retention_ms >= 0 and seg.max_timestamp >= 0
                           and now_ms - seg.max_timestamp > config.retention_ms)
                too_big = excess >= 0 and excess - seg.size >= 0
                if not (expired or too_big):
                    break
                excess -= seg.size
                n += 1
        if n:
            with self._lock:
                try:
                    self._delete_leading_segments(n)
                    self._aborted.drop_below(self._log_start, [seg.base_offset for seg in self._segments])
                except OSError as e:
                    raise StorageError(f"retention in {self.directory} failed: {e}") from e
        self._expire_producers(now_ms)
        return n

    def _delete_leading_segments(self, n: int) -> None:
        if n <= 0:
            return
        doomed, self._segments = self._segments[:n], self._segments[n:]
        self._log_start = max(self._log_start, self._segments[0].base_offset)
        for seg in doomed:
            seg.remove_files()  # unlinked now, closed by close_retired(): a concurrent read may hold its handle
            self._retired.append(seg)
        self.fs.fsync_dir(self.directory)
        self._epochs.truncate_from_start(self._log_start)  # if a crash comes first, open() does it

    def truncate_to(self, offset: int) -> int:
        """Remove everything from the batch holding `offset` on (for recovery and replication). The log end
        becomes the largest batch boundary <= offset. Durable before it returns. Returns the new log end."""
        self._check_writable()
        if offset >= self._log_end:
            # Nothing to cut, but an epoch recorded at the log end with no batch of its own goes (as in Kafka):
            # a replica that became leader and lost it before writing anything must not report that epoch as
            # its last fetched one, or the leader would answer diverging_epoch forever.
            with self._lock:
                try:
                    self._epochs.truncate_from_end(self._log_end)
                except OSError as e:
                    raise StorageError(f"cannot save the leader epochs of {self.directory}: {e}") from e
            return self._log_end
        if offset < self._log_start:
            raise OffsetOutOfRange(f"cannot truncate to {offset}, below log start {self._log_start}")
        with self._lock:
            try:
                self._truncate_locked(offset)
            except OSError as e:
                self._failed = StorageError(f"truncation failed: {e}")
                raise StorageError(f"truncate of {self.directory} failed: {e}") from e
        return self._log_end

    def _truncate_locked(self, offset: int) -> None:
        segments = self._segments
        i = max(0, bisect.bisect_right(segments, offset, key=_base_of) - 1)
        seg, doomed = segments[i], segments[i + 1:]
        cut_position, new_end = seg.size, seg.next_offset
        position, _ = seg.position_hint(offset)
        for header in seg.headers(position):
            if header.last_offset >= offset:
                cut_position, new_end = header.position, header.base_offset
                break
        self._segments = segments[: i + 1]
        for later in doomed:
            later.delete_files()
        seg.truncate_to_size(cut_position, new_end)
        seg.log.fsync()
        if doomed:
            self.fs.fsync_dir(self.directory)
        self._truncations += 1
        self._log_end = new_end
        self._log_start = min(self._log_start, new_end)
        self._high_watermark = min(self._high_watermark, new_end)
        self._flushed = min(self._flushed, new_end)
        self._recovery_point = min(self._recovery_point, new_end)
        self._cleaner_point = min(self._cleaner_point, new_end)
        self._epochs.truncate_from_end(new_end)
        self._unflushed_messages = 0
        self._first_unflushed_ms = None
        self._write_checkpoint(clean=False)  # a recovery point above the new end would skip validating new data
        self._load_producer_state()

    # ================================================================================================ housekeeping

    def housekeep(self, now_ms: int) -> None:
        """Retention, compaction (when cleanup.policy contains compact) and a recovery checkpoint.
        May run in a worker thread; see the module docstring for what the owner must hold back meanwhile."""
        self.apply_retention(now_ms)
        if self.config.compact:
            self.checkpoint()  # compaction rewrites only segments below the recovery point
            self.compact(now_ms)
        self.checkpoint()

    def close_retired(self) -> None:
        """Close the files of segments removed by retention, DeleteRecords or compaction. Owning thread only,
        between reads (a read in progress may hold a removed segment)."""
        with self._lock:
            retired, self._retired = self._retired, []
        for seg in retired:
            seg.close()

    def compact(self, now_ms: int) -> int:
        """Compact closed segments when cleanup.policy contains compact (see compaction.py).
        Returns the number of segments rewritten."""
        if not self.config.compact:
            return 0
        try:
            done = compaction.compact(self, now_ms)
            if done is None:
                return 0
            write_cleaner_point(self.fs, self.directory, done.cleaner_point)
        except OSError as e:
            raise StorageError(f"compaction of {self.directory} failed: {e}") from e
        self._cleaner_point = done.cleaner_point
        return done.rewritten

    def replace_segments(self, old: Sequence[Segment], cleaned: str) -> bool:
        """Compaction's commit: replace the adjacent segments `old` (all closed) by one segment whose batches are
        in the fsynced file `cleaned` (`<old[0] base>.log.cleaned`), crash-safe (segment.py lists the steps). The
        new segment keeps old[0]'s base and ends where old[-1] ended, so later segments stay where they are. The
        old segments are retired (closed by close_retired(): a concurrent read may still use them). Returns
        False, and removes `cleaned`, if `old` is no longer a run of this log's segments (deleted or truncated
        away meanwhile)."""
        with self._lock:
            segments = self._segments
            at = segments.index(old[0]) if old and old[0] in segments else -1
            if at < 0 or segments[at:at + len(old)] != tuple(old) or at + len(old) >= len(segments):
                self.fs.remove(cleaned)
                return False
            first = old[0]
            try:
                commit_swap(self.fs, self.directory, old, cleaned)
                new = Segment(self.fs, self.directory, first.base_offset, self.config.index_interval_bytes,
                              first.created_ms)
                new.open_files(create=False)
                new.size = new.log.size()
                new.rebuild_from_headers()
                new.seal_time_index()
                new.flush_indexes()
            except OSError as e:
                # Past the commit point the files no longer match the segments in memory; reopening completes it.
                self._failed = StorageError(f"compaction swap failed: {e}")
                raise StorageError(f"compaction swap in {self.directory} failed: {e}") from e
            new.next_offset = old[-1].next_offset  # keep "ends where the next segment starts"
            self._segments = segments[:at] + (new,) + segments[at + len(old):]
            self._retired.extend(old)
        return True

    # ================================================================================================ closing

    def close(self) -> None:
        """Flush everything and write the clean-shutdown checkpoint, so the next open reads no log data.
        If anything fails the flag is not written (the next open recovers) and StorageError is raised."""
        if self._closed:
            return
        try:
            if self._failed is None:
                self.flush()
                self._segments[-1].seal_time_index()
                for seg in self._segments:
                    seg.flush_indexes()
                if self._snapshot_offset != self._log_end:
                    self._write_snapshot(self._log_end)
                self._recovery_point = self._log_end
                self._write_checkpoint(clean=True)
        except OSError as e:
            raise StorageError(f"clean close of {self.directory} failed: {e}") from e
        finally:
            self._closed = True
            self._close_files()

    def abandon(self) -> None:
        """Close the files without flushing or checkpointing: the log is being deleted."""
        self._closed = True
        self._close_files()

    def _close_files(self) -> None:
        for seg in (*self._segments, *self._retired):
            seg.close()
        self._retired = []

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)


def _marker_of(records) -> tuple[bool, int]:
    """(commit, coordinator epoch) of a control batch's one record: key int16 version, int16 type (1 COMMIT,
    0 ABORT); value int16 version, int32 coordinator epoch (-1 when the value is missing or short)."""
    for record in records:
        key, value = record.key, record.value
        commit = key is not None and len(key) >= 4 and int.from_bytes(key[2:4], "big", signed=True) == COMMIT
        epoch = int.from_bytes(value[2:6], "big", signed=True) if value is not None and len(value) >= 6 else -1
        return commit, epoch
    return False, -1


def _base_of(seg: Segment) -> int:
    return seg.base_offset


__all__ = ["PartitionLog", "AppendResult", "RecoveryInfo", "LogError"]
