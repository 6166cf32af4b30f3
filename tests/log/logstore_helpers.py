"""Helpers shared by the log store tests."""

from __future__ import annotations

from kafkalite.log import LogConfig, PartitionLog
from kafkalite.log.fs_faulty import FaultyFileSystem
from kafkalite.protocol.record_batch import RecordBatch, build_batch, iter_batches

DIR = "/data/topic-0"


def batch(*values: bytes, key: bytes | None = None, ts: int = 1000, pid: int = -1, epoch: int = -1,
          seq: int = -1, keys=None) -> bytearray:
    """A v2 batch as a producer would send it (baseOffset 0), writable like a received request buffer."""
    keys = keys if keys is not None else [key] * len(values)
    return bytearray(build_batch([(k, v) for k, v in zip(keys, values)], timestamps=ts, producer_id=pid,
                                 producer_epoch=epoch, base_sequence=seq))


def read_all(log: PartitionLog, start: int | None = None) -> list[RecordBatch]:
    """Every batch from `start` (default: log start) to the log end, via read()."""
    out = []
    offset = log.log_start_offset if start is None else start
    while offset < log.log_end_offset:
        chunks = log.read(offset, 1 << 20)
        assert chunks, f"read({offset}) returned nothing below the log end {log.log_end_offset}"
        for chunk in chunks:
            for b in iter_batches(chunk):
                if b.last_offset >= offset:
                    out.append(b)
                offset = max(offset, b.next_offset)
    return out


def values(log: PartitionLog) -> list[bytes]:
    return [r.value for b in read_all(log) for r in b.records()]


def open_log(fs: FaultyFileSystem, config: LogConfig | None = None, path: str = DIR, clock=None) -> PartitionLog:
    return PartitionLog.open(path, config or LogConfig(), fs, clock=clock or (lambda: 1000))
