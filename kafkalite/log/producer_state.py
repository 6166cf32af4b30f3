"""Idempotent producer state: per producer id, its epoch and the metadata of its last 5 batches.

Rules on append (Kafka's), for batches with producerId >= 0 and baseSequence >= 0:
  - unknown producer id: accepted at any sequence (kafka-python starts wherever it likes after a reset);
  - epoch lower than the known one: InvalidProducerEpoch;
  - epoch higher than the known one: must start at sequence 0, else OutOfOrderSequence; forgets older batches;
  - same epoch, same (first, last) sequence as one of the last 5 batches: a duplicate, not written again;
  - same epoch otherwise: first sequence must be last sequence + 1 (wrapping from 2^31-1 to 0), else
    OutOfOrderSequence.

Transactions: a producer's transactional batches open a transaction at the first one's offset, which stays
open until the broker appends a marker (a control batch) for that producer; the first offset of every open
transaction bounds the partition's last stable offset. A marker of an older epoch than the producer's is
refused (InvalidProducerEpoch); one of a newer epoch (the coordinator fenced the producer) makes it the
producer's epoch, so the fenced instance's later batches are refused. A marker from a transaction coordinator
older (by coordinator epoch, the leader epoch of its __transaction_state partition) than the one that wrote the
producer's last marker is refused too (TransactionCoordinatorFenced): a deposed coordinator's late marker.

Expiry (Kafka's producer.id.expiration.ms): each entry remembers when its last batch was appended; remove_expired
forgets entries whose last batch is older than a cut-off, after which the producer counts as unknown again.

Snapshot file `<offset, 20 digits>.snapshot` holds the state as of `offset` (the log end when it was taken);
recovery loads the newest snapshot at or below the recovered log end and replays batch headers after it.
"""

from __future__ import annotations

import os
import struct
import time
from collections import deque
from dataclasses import dataclass, field

from kafkalite.log.errors import InvalidProducerEpoch, OutOfOrderSequence, TransactionCoordinatorFenced
from kafkalite.log.segment import BatchHeader, segment_name
from kafkalite.protocol.record_batch import CONTROL_BIT, TRANSACTIONAL_BIT, crc32c

MAX_BATCHES_PER_PRODUCER = 5
SEQUENCE_WRAP = 2**31

SNAPSHOT_MAGIC = b"KLPS"
SNAPSHOT_VERSION = 4  # 2 added the last append timestamp per producer, 3 the open transaction's first offset,
# 4 the coordinator epoch of its last transaction marker
_SNAPSHOT_HEADER = struct.Struct(">4sHHqiI")  # magic, version, reserved, offset, producer count, crc32c of body
_PRODUCER = struct.Struct(">qhHqqi")  # + the coordinator epoch of its last marker
_PRODUCER_V3 = struct.Struct(">qhHqq")  # producer id, epoch, batch count, last append timestamp (ms), txn first offset
_PRODUCER_V2 = struct.Struct(">qhHq")  # producer id, epoch, batch count, last append timestamp (ms)
_PRODUCER_V1 = struct.Struct(">qhH")  # producer id, epoch, batch count
_BATCH = struct.Struct(">iiqq")  # first seq, last seq, base offset, last offset


@dataclass(slots=True, frozen=True)
class BatchMetadata:
    first_seq: int
    last_seq: int
    base_offset: int
    last_offset: int


@dataclass(slots=True)
class ProducerEntry:
    epoch: int
    last_timestamp: int = -1  # ms: when its last batch was appended (on replay: that batch's max timestamp)
    batches: deque = field(default_factory=lambda: deque(maxlen=MAX_BATCHES_PER_PRODUCER))
    txn_first_offset: int = -1  # the first offset of its open transaction, -1 when none is open
    coordinator_epoch: int = -1  # of the transaction coordinator that wrote its last marker


@dataclass(slots=True, frozen=True)
class ActiveProducer:
    """One producer as DescribeProducers reports it."""

    producer_id: int
    epoch: int
    last_sequence: int  # -1 before its first batch (a marker alone made the entry)
    last_timestamp: int
    txn_first_offset: int
    coordinator_epoch: int  # -1 before its first marker


def last_sequence(header: BatchHeader) -> int:
    return (header.base_sequence + header.last_offset - header.base_offset) % SEQUENCE_WRAP


def next_sequence(seq: int) -> int:
    return 0 if seq == SEQUENCE_WRAP - 1 else seq + 1


def is_idempotent(header: BatchHeader) -> bool:
    return header.producer_id >= 0 and header.base_sequence >= 0


def is_marker(header: BatchHeader) -> bool:
    return header.producer_id >= 0 and bool(header.attributes & CONTROL_BIT)


class ProducerStateTable:
    def __init__(self):
        self.producers: dict[int, ProducerEntry] = {}
        # producer id -> first offset of its open transaction (its entry's txn_first_offset), so that the last
        # stable offset, asked on every fetch, does not scan every producer the partition has seen
        self._open: dict[int, int] = {}

    def check(self, header: BatchHeader) -> BatchMetadata | None:
        """Validate an incoming batch. Returns the original batch's metadata if it is a duplicate, else None.
        Raises InvalidProducerEpoch / OutOfOrderSequence. Offsets in `header` are not assigned yet."""
        entry = self.producers.get(header.producer_id)
        if entry is None:
            return None
        first, last = header.base_sequence, last_sequence(header)
        if header.producer_epoch < entry.epoch:
            raise InvalidProducerEpoch(
                f"producer {header.producer_id} epoch {header.producer_epoch} is older than {entry.epoch}")
        if header.producer_epoch > entry.epoch:
            if first != 0:
                raise OutOfOrderSequence(
                    f"producer {header.producer_id} new epoch {header.producer_epoch} starts at sequence {first}, "
                    "not 0")
            return None
        for meta in entry.batches:
            if meta.first_seq == first and meta.last_seq == last:
                return meta
        if entry.batches and first != next_sequence(entry.batches[-1].last_seq):
            raise OutOfOrderSequence(
                f"producer {header.producer_id} sequence {first} does not follow {entry.batches[-1].last_seq}")
        return None

    def update(self, header: BatchHeader, timestamp_ms: int) -> None:
        """Record a batch that is now in the log (offsets assigned), appended at `timestamp_ms`. Used on append
        and on replay."""
        entry = self.producers.get(header.producer_id)
        if entry is None or header.producer_epoch != entry.epoch:
            open_txn = entry.txn_first_offset if entry is not None else -1
            coordinator = entry.coordinator_epoch if entry is not None else -1
            entry = self.producers[header.producer_id] = ProducerEntry(header.producer_epoch, txn_first_offset=open_txn,
                                                                       coordinator_epoch=coordinator)
        if header.attributes & TRANSACTIONAL_BIT and entry.txn_first_offset < 0:
            entry.txn_first_offset = self._open[header.producer_id] = header.base_offset
        entry.batches.append(
            BatchMetadata(header.base_sequence, last_sequence(header), header.base_offset, header.last_offset))
        entry.last_timestamp = timestamp_ms

    def check_marker(self, header: BatchHeader, coordinator_epoch: int) -> None:
        """A marker may be appended: its producer epoch is not older than the producer's, and it comes from a
        coordinator at least as new as the one that wrote the producer's last marker (a deposed coordinator's late
        marker is refused, as Kafka does)."""
        entry = self.producers.get(header.producer_id)
        if entry is None:
            return
        if header.producer_epoch < entry.epoch:
            raise InvalidProducerEpoch(
                f"marker of producer {header.producer_id} epoch {header.producer_epoch} is older than {entry.epoch}")
        if coordinator_epoch < entry.coordinator_epoch:
            raise TransactionCoordinatorFenced(
                f"marker of producer {header.producer_id} from coordinator epoch {coordinator_epoch}; its last "
                f"marker came from epoch {entry.coordinator_epoch}")

    def end_transaction(self, header: BatchHeader, timestamp_ms: int, coordinator_epoch: int = -1) -> int:
        """A marker for the producer is in the log: its transaction ends. Returns the transaction's first offset
        (-1 when it had none open)."""
        entry = self.producers.get(header.producer_id)
        if entry is None or header.producer_epoch > entry.epoch:
            first = entry.txn_first_offset if entry is not None else -1
            entry = self.producers[header.producer_id] = ProducerEntry(header.producer_epoch)
        else:
            first = entry.txn_first_offset
        entry.txn_first_offset = -1
        self._open.pop(header.producer_id, None)
        entry.last_timestamp = timestamp_ms
        entry.coordinator_epoch = max(entry.coordinator_epoch, coordinator_epoch)
        return first

    def first_unstable_offset(self) -> int | None:
        """The first offset of the oldest open transaction, or None."""
        return min(self._open.values(), default=None)

    def active(self) -> list[ActiveProducer]:
        """Every producer the table holds, by id (a copy: list() takes the entries in one step)."""
        return [ActiveProducer(pid, e.epoch, e.batches[-1].last_seq if e.batches else -1, e.last_timestamp,
                               e.txn_first_offset, e.coordinator_epoch)
                for pid, e in sorted(list(self.producers.items()))]

    def last_offsets(self) -> dict[int, tuple[int, int]]:
        """Producer id -> (epoch, last offset of its last data batch, or -1 when it has none of this epoch):
        the batches compaction keeps for each producer."""
        return {pid: (e.epoch, e.batches[-1].last_offset if e.batches else -1) for pid, e in self.producers.items()}

    def remove_expired(self, cutoff_ms: int) -> int:
        """Forget producers whose last batch was appended before `cutoff_ms`. Returns how many were removed."""
        # a producer with a transaction open is kept: its first offset holds the last stable offset back
        expired = [pid for pid, entry in self.producers.items()
                   if entry.last_timestamp < cutoff_ms and entry.txn_first_offset < 0]
        for pid in expired:
            del self.producers[pid]
        return len(expired)

    def clear(self) -> None:
        self.producers.clear()
        self._open.clear()

    # -- snapshots ------------------------------------------------------------------------------------------

    def encode(self, offset: int) -> bytes:
        body = bytearray()
        for pid, entry in self.producers.items():
            body += _PRODUCER.pack(pid, entry.epoch, len(entry.batches), entry.last_timestamp, entry.txn_first_offset,
                                   entry.coordinator_epoch)
            for m in entry.batches:
                body += _BATCH.pack(m.first_seq, m.last_seq, m.base_offset, m.last_offset)
        return _SNAPSHOT_HEADER.pack(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, 0, offset, len(self.producers),
                                     crc32c(bytes(body))) + bytes(body)

    @classmethod
    def decode(cls, data: bytes, now_ms: int | None = None) -> tuple[int, "ProducerStateTable"]:
        """(offset, table); raises ValueError if the snapshot is damaged. A version 1 snapshot has no timestamps:
        its producers count as appended at `now_ms` (default: the wall clock), so they expire one window later."""
        if len(data) < _SNAPSHOT_HEADER.size:
            raise ValueError("snapshot too short")
        magic, version, _, offset, count, crc = _SNAPSHOT_HEADER.unpack_from(data, 0)
        body = data[_SNAPSHOT_HEADER.size:]
        if magic != SNAPSHOT_MAGIC or version not in (1, 2, 3, SNAPSHOT_VERSION) or crc32c(body) != crc:
            raise ValueError("snapshot header or checksum mismatch")
        if version == 1 and now_ms is None:
            now_ms = int(time.time() * 1000)
        table = cls()
        pos = 0
        for _ in range(count):
            coordinator = -1
            if version == 1:
                pid, epoch, n = _PRODUCER_V1.unpack_from(body, pos)
                last_timestamp, pos = now_ms, pos + _PRODUCER_V1.size
                txn_first = -1
            elif version == 2:
                pid, epoch, n, last_timestamp = _PRODUCER_V2.unpack_from(body, pos)
                txn_first, pos = -1, pos + _PRODUCER_V2.size
            elif version == 3:
                pid, epoch, n, last_timestamp, txn_first = _PRODUCER_V3.unpack_from(body, pos)
                pos += _PRODUCER_V3.size
            else:
                pid, epoch, n, last_timestamp, txn_first, coordinator = _PRODUCER.unpack_from(body, pos)
                pos += _PRODUCER.size
            entry = table.producers[pid] = ProducerEntry(epoch, last_timestamp, txn_first_offset=txn_first,
                                                         coordinator_epoch=coordinator)
            if txn_first >= 0:
                table._open[pid] = txn_first
            for _ in range(n):
                entry.batches.append(BatchMetadata(*_BATCH.unpack_from(body, pos)))
                pos += _BATCH.size
        if pos != len(body):
            raise ValueError("snapshot length mismatch")
        return offset, table


def snapshot_path(directory: str, offset: int) -> str:
    return os.path.join(directory, segment_name(offset, ".snapshot"))
