"""Codecs of a partition's small checkpoint files (layouts in docs/storage.md). Each file is replaced whole with
FileSystem.write_file_atomic, so a reader sees the old or the new contents; a file that does not decode (damage,
an unknown version) reads as "no checkpoint", and each caller says what that costs.

  partition.checkpoint       log start offset, recovery point, clean-shutdown marker (binary, CRC-32C)
  cleaner.checkpoint         compaction's cleaner point (binary, CRC-32C)
  leader-epoch-checkpoint    leader epoch -> first offset, as Kafka's file of that name (text)
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from kafkalite.log.fs import FileSystem
from kafkalite.protocol.record_batch import crc32c

PARTITION_CHECKPOINT_FILE = "partition.checkpoint"
CLEANER_CHECKPOINT_FILE = "cleaner.checkpoint"
LEADER_EPOCH_CHECKPOINT_FILE = "leader-epoch-checkpoint"

_PARTITION_MAGIC = b"KLCP"
_PARTITION_VERSION = 1
_FLAG_CLEAN_SHUTDOWN = 1
# magic, version, flags, log start offset, recovery point, log end offset, active segment base, active .log size
_PARTITION = struct.Struct(">4sHHqqqqq")
_CRC = struct.Struct(">I")  # CRC-32C of the bytes before it
_OFFSET = struct.Struct(">q")
_LEADER_EPOCH_VERSION = 0


def _read(fs: FileSystem, directory: str, name: str) -> bytes | None:
    path = os.path.join(directory, name)
    return fs.read_file(path) if fs.exists(path) else None


# -- partition.checkpoint -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PartitionCheckpoint:
    log_start_offset: int
    recovery_point: int
    clean: bool  # written by a clean shutdown; then the last three fields describe the log as it was closed
    log_end_offset: int
    active_base: int
    active_size: int

    def encode(self) -> bytes:
        body = _PARTITION.pack(_PARTITION_MAGIC, _PARTITION_VERSION, _FLAG_CLEAN_SHUTDOWN if self.clean else 0,
                               self.log_start_offset, self.recovery_point, self.log_end_offset, self.active_base,
                               self.active_size)
        return body + _CRC.pack(crc32c(body))

    @classmethod
    def decode(cls, data: bytes) -> "PartitionCheckpoint | None":
        """None if damaged or of another version (the caller then validates everything)."""
        if len(data) != _PARTITION.size + _CRC.size:
            return None
        body = data[: _PARTITION.size]
        if _CRC.unpack_from(data, _PARTITION.size)[0] != crc32c(body):
            return None
        magic, version, flags, start, recovery_point, end, active_base, active_size = _PARTITION.unpack(body)
        if magic != _PARTITION_MAGIC or version != _PARTITION_VERSION:
            return None
        return cls(start, recovery_point, bool(flags & _FLAG_CLEAN_SHUTDOWN), end, active_base, active_size)


def read_partition_checkpoint(fs: FileSystem, directory: str) -> PartitionCheckpoint | None:
    data = _read(fs, directory, PARTITION_CHECKPOINT_FILE)
    return None if data is None else PartitionCheckpoint.decode(data)


def write_partition_checkpoint(fs: FileSystem, directory: str, checkpoint: PartitionCheckpoint) -> None:
    fs.write_file_atomic(os.path.join(directory, PARTITION_CHECKPOINT_FILE), checkpoint.encode())


# -- cleaner.checkpoint ---------------------------------------------------------------------------------------

def encode_cleaner_point(offset: int) -> bytes:
    body = _OFFSET.pack(offset)
    return body + _CRC.pack(crc32c(body))


def decode_cleaner_point(data: bytes) -> int:
    """The cleaner point, or 0 (everything dirty) if `data` is damaged."""
    if len(data) != _OFFSET.size + _CRC.size or _CRC.unpack_from(data, _OFFSET.size)[0] != crc32c(data[:8]):
        return 0
    return _OFFSET.unpack_from(data)[0]


def read_cleaner_point(fs: FileSystem, directory: str) -> int:
    data = _read(fs, directory, CLEANER_CHECKPOINT_FILE)
    return 0 if data is None else decode_cleaner_point(data)


def write_cleaner_point(fs: FileSystem, directory: str, offset: int) -> None:
    fs.write_file_atomic(os.path.join(directory, CLEANER_CHECKPOINT_FILE), encode_cleaner_point(offset))


# -- leader-epoch-checkpoint ----------------------------------------------------------------------------------

def encode_leader_epochs(entries: list[tuple[int, int]]) -> bytes:
    """Kafka's text layout: the version (0), the number of entries, then one "epoch start_offset" line each."""
    lines = [str(_LEADER_EPOCH_VERSION), str(len(entries))] + [f"{epoch} {start}" for epoch, start in entries]
    return ("\n".join(lines) + "\n").encode("ascii")


def decode_leader_epochs(data: bytes) -> list[tuple[int, int]] | None:
    """The (epoch, start offset) entries, or None if the file is damaged: not the layout above, a count that does
    not match, or entries that do not grow strictly in both epoch and offset (a damaged file is rebuilt)."""
    try:
        lines = data.decode("ascii").split("\n")
        if lines[-1] != "" or int(lines[0]) != _LEADER_EPOCH_VERSION:
            return None
        count, rows = int(lines[1]), lines[2:-1]
        if count != len(rows):
            return None
        entries = []
        for row in rows:
            epoch, start = row.split(" ")
            entries.append((int(epoch), int(start)))
    except (UnicodeDecodeError, ValueError, IndexError):
        return None
    for (epoch, start), (next_epoch, next_start) in zip(entries, entries[1:]):
        if next_epoch <= epoch or next_start <= start:
            return None
    if any(epoch < 0 or start < 0 for epoch, start in entries):
        return None
    return entries


def read_leader_epochs(fs: FileSystem, directory: str) -> list[tuple[int, int]] | None:
    """The entries, or None if the file is missing or damaged (the log then rebuilds them from its batches)."""
    data = _read(fs, directory, LEADER_EPOCH_CHECKPOINT_FILE)
    return None if data is None else decode_leader_epochs(data)
