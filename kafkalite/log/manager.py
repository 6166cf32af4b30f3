"""LogManager: the topics and partition logs under one data directory.

Layout:
  <data_dir>/meta.json               topics: id, partition count, config overrides (write_json: atomic, durable)
  <data_dir>/<topic>-<partition>/    one PartitionLog each
  <data_dir>/<topic>-<p>.<id>-delete/  a deleted topic's partition: removed by remove_deleted(), or on the next
                                       open() after a crash

meta.json is the source of truth: a topic exists once meta.json names it (partition directories are created
right after, without fsyncs, and again on open if a crash lost them), and is gone once meta.json no longer does.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field

from kafkalite.log.config import LogConfig
from kafkalite.log.errors import (
    InvalidConfig, InvalidPartitions, InvalidTopicName, StorageError, TopicExists, UnknownTopic,
)
from kafkalite.log.fs import FileSystem
from kafkalite.log.partition import PartitionLog

META_FILE = "meta.json"
META_VERSION = 1
MAX_TOPIC_NAME_LENGTH = 249
# Partitions one request may create (Kafka's controller caps a batch at 10,000 too). Without a cap a single
# CreateTopics/CreatePartitions asking for 2^31-1 partitions blocks the broker creating directories forever,
# and meta.json would make every restart try again.
MAX_PARTITIONS_PER_REQUEST = 10_000
_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]+")


def validate_topic_name(name: str) -> None:
    """Kafka's rules; raises InvalidTopicName."""
    if not name:
        raise InvalidTopicName("topic name is empty")
    if name in (".", ".."):
        raise InvalidTopicName(f"topic name cannot be {name!r}")
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise InvalidTopicName(f"topic name is longer than {MAX_TOPIC_NAME_LENGTH} characters")
    if not _LEGAL_TOPIC.fullmatch(name):
        raise InvalidTopicName(f"topic name {name!r} has characters outside [a-zA-Z0-9._-]")


@dataclass
class TopicInfo:
    name: str
    id: uuid.UUID
    partitions: int
    configs: dict[str, str]  # the topic's overrides only, as given (Kafka names, string values)
    config: LogConfig  # defaults + overrides, parsed
    logs: list[PartitionLog] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class OpenSummary:
    topics: int
    partitions: int
    clean_partitions: int  # opened from a clean-shutdown checkpoint, no log data read
    recovered_partitions: int  # validated batch by batch
    truncated_bytes: int
    seconds: float


class LogManager:
    """All logs of a broker. Call open() before anything else and close() at shutdown. Owning-thread only,
    except PartitionLog.flush (see partition.py)."""

    def __init__(self, data_dir: str, defaults: LogConfig | None = None, fs: FileSystem | None = None,
                 clock=None):
        self.data_dir = data_dir
        self.defaults = defaults or LogConfig()
        self.fs = fs or FileSystem()
        self.clock = clock
        self._topics: dict[str, TopicInfo] = {}
        self._opened = False

    # -------------------------------------------------------------------------------------------- lifecycle

    def open(self) -> OpenSummary:
        """Load meta.json, remove deleted topics' leftovers, open (recovering as needed) every partition."""
        started = time.monotonic()
        fs = self.fs
        try:
            fs.makedirs(self.data_dir)
            for name in fs.listdir(self.data_dir):
                if name.endswith("-delete"):
                    fs.rmtree(self._path(name))
                elif name.endswith(".tmp"):
                    fs.remove(self._path(name))
            meta = self._read_meta()
        except OSError as e:
            raise StorageError(f"cannot open data directory {self.data_dir}: {e}") from e
        partitions = clean = recovered = truncated = 0
        for name, entry in meta.items():
            configs = dict(entry["configs"])
            info = TopicInfo(name, uuid.UUID(entry["id"]), int(entry["partitions"]), configs,
                             LogConfig.from_configs(configs, self.defaults))
            self._topics[name] = info
            for index in range(info.partitions):
                log = self._open_partition(info, index)
                info.logs.append(log)
                partitions += 1
                clean += log.recovery.clean
                recovered += log.recovery.segments_scanned > 0
                truncated += log.recovery.truncated_bytes
        self._opened = True
        return OpenSummary(len(self._topics), partitions, clean, recovered, truncated, time.monotonic() - started)

    def close(self) -> None:
        """Close every partition with a clean-shutdown checkpoint (the marker that makes the next open cheap).
        Raises the first StorageError after trying all partitions."""
        first_error = None
        for info in self._topics.values():
            for log in info.logs:
                try:
                    log.close()
                except StorageError as e:
                    first_error = first_error or e
        self._opened = False
        if first_error:
            raise first_error

    def checkpoint(self) -> None:
        """Recovery checkpoint of every partition (flush, index fsync, producer snapshot, recovery point)."""
        for log in self._all_logs():
            if not log.failed:
                log.checkpoint()

    def flush_due(self, now_ms: int) -> list[PartitionLog]:
        """Partitions whose flush.ms / flush.messages ask for a flush now (the caller flushes them)."""
        return [log for log in self._all_logs() if log.flush_due(now_ms)]

    def apply_retention(self, now_ms: int) -> int:
        """Retention on every partition; returns the number of segments deleted."""
        return sum(log.apply_retention(now_ms) for log in self._all_logs() if not log.failed)

    def compact(self, now_ms: int) -> int:
        """Checkpoint and compact every compacted partition; returns the number of segments rewritten."""
        total = 0
        for info in self._topics.values():
            if info.config.compact:
                for log in info.logs:
                    if not log.failed:
                        log.checkpoint()
                        total += log.compact(now_ms)
        return total

    def housekeeping_logs(self) -> list[PartitionLog]:
        """The partitions for periodic housekeeping (PartitionLog.housekeep), one at a time: the broker runs each
        in a worker thread and serves requests meanwhile."""
        return [log for log in self._all_logs() if not log.failed]

    # -------------------------------------------------------------------------------------------- topics

    def create_topic(self, name: str, partitions: int, configs: dict[str, str] | None = None,
                     topic_id: uuid.UUID | None = None) -> uuid.UUID:
        """Create a topic; raises InvalidTopicName, TopicExists, InvalidPartitions, InvalidConfig, StorageError."""
        validate_topic_name(name)
        if name in self._topics:
            raise TopicExists(f"topic {name!r} already exists")
        if partitions < 1:
            raise InvalidPartitions(f"number of partitions must be at least 1, not {partitions}")
        if partitions > MAX_PARTITIONS_PER_REQUEST:
            raise InvalidPartitions(f"{partitions} partitions is more than {MAX_PARTITIONS_PER_REQUEST} at once")
        configs = {k: str(v) for k, v in (configs or {}).items()}
        config = LogConfig.from_configs(configs, self.defaults)
        info = TopicInfo(name, topic_id or uuid.uuid4(), partitions, configs, config)
        self._topics[name] = info
        try:
            self._write_meta()
        except (OSError, StorageError) as e:
            del self._topics[name]
            raise StorageError(f"cannot persist topic {name!r}: {e}") from e
        for index in range(partitions):
            info.logs.append(self._open_partition(info, index))
        return info.id

    def delete_topic(self, name: str, remove_files: bool = True) -> list[str]:
        """Forget the topic (durably: meta.json is the commit point) and rename its partition directories to
        `*-delete`. Those are removed here, or with remove_files=False returned for remove_deleted() (which
        may run in a worker thread: nothing else touches them). open() removes leftovers after a crash."""
        doomed = self.retire_topic_logs(self.forget_topic(name))
        if remove_files:
            self.remove_deleted(doomed)
            return []
        return doomed

    def forget_topic(self, name: str) -> TopicInfo:
        """delete_topic's first half, the commit point: meta.json without the topic (its logs stay open until
        retire_topic_logs). May run in a worker thread while the owning thread still reads the logs."""
        info = self.topic(name)
        del self._topics[name]
        try:
            self._write_meta()
        except (OSError, StorageError) as e:
            self._topics[name] = info
            raise StorageError(f"cannot persist deletion of {name!r}: {e}") from e
        return info

    def retire_topic_logs(self, info: TopicInfo) -> list[str]:
        """delete_topic's second half, on the owning thread: close a forgotten topic's logs and rename their
        directories to `*-delete`; returns those for remove_deleted()."""
        doomed = []
        for index, log in enumerate(info.logs):
            log.abandon()  # no flush: its data is going
            path = self._partition_dir(info.name, index)
            renamed = f"{path}.{info.id.hex}-delete"
            try:
                self.fs.rename(path, renamed)
                doomed.append(renamed)
            except OSError:
                pass  # a dir that was not renamed is stray and left alone
        return doomed

    def remove_deleted(self, directories: list[str]) -> None:
        for directory in directories:
            try:
                self.fs.rmtree(directory)
            except OSError:
                pass  # open() removes *-delete leftovers

    def add_partitions(self, name: str, new_total: int) -> None:
        info = self.topic(name)
        if new_total <= info.partitions:
            raise InvalidPartitions(f"topic {name!r} has {info.partitions} partitions; {new_total} is not more")
        if new_total - info.partitions > MAX_PARTITIONS_PER_REQUEST:
            raise InvalidPartitions(f"adding {new_total - info.partitions} partitions is more than "
                                    f"{MAX_PARTITIONS_PER_REQUEST} at once")
        old = info.partitions
        info.partitions = new_total
        try:
            self._write_meta()
        except (OSError, StorageError) as e:
            info.partitions = old
            raise StorageError(f"cannot persist partitions of {name!r}: {e}") from e
        for index in range(old, new_total):
            info.logs.append(self._open_partition(info, index))

    def alter_configs(self, name: str, configs: dict[str, str | None], incremental: bool = False) -> LogConfig:
        """Replace the topic's overrides (AlterConfigs), or with incremental=True set the given ones and delete
        those given as None (IncrementalAlterConfigs). Validates first; returns the new LogConfig."""
        info = self.topic(name)
        if incremental:
            merged = dict(info.configs)
            for key, value in configs.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = str(value)
        else:
            if any(v is None for v in configs.values()):
                raise InvalidConfig("AlterConfigs values cannot be null")
            merged = {k: str(v) for k, v in configs.items()}
        config = LogConfig.from_configs(merged, self.defaults)
        old_configs, old_config = info.configs, info.config
        info.configs, info.config = merged, config
        try:
            self._write_meta()
        except (OSError, StorageError) as e:
            info.configs, info.config = old_configs, old_config
            raise StorageError(f"cannot persist configs of {name!r}: {e}") from e
        for log in info.logs:
            log.config = config
        return config

    def topics(self) -> list[str]:
        return sorted(self._topics)

    def topic(self, name: str) -> TopicInfo:
        try:
            return self._topics[name]
        except KeyError:
            raise UnknownTopic(f"unknown topic {name!r}") from None

    def partition(self, name: str, index: int) -> PartitionLog:
        info = self.topic(name)
        if not 0 <= index < info.partitions:
            raise UnknownTopic(f"topic {name!r} has no partition {index}")
        return info.logs[index]

    # -------------------------------------------------------------------------------------------- internals

    def _all_logs(self):
        for info in self._topics.values():
            yield from info.logs

    def _open_partition(self, info: TopicInfo, index: int) -> PartitionLog:
        return PartitionLog.open(self._partition_dir(info.name, index), info.config, self.fs, self.clock)

    def _partition_dir(self, name: str, index: int) -> str:
        return self._path(f"{name}-{index}")

    def _path(self, name: str) -> str:
        return os.path.join(self.data_dir, name)

    def _read_meta(self) -> dict:
        meta = self.read_json(META_FILE)
        if meta is None:
            return {}
        try:
            if meta.get("version") != META_VERSION:
                raise ValueError(f"unsupported version {meta.get('version')}")
            return meta["topics"]
        except (AttributeError, ValueError, KeyError) as e:
            raise StorageError(f"{self._path(META_FILE)} is unreadable ({e}); refusing to start") from e

    def _write_meta(self) -> None:
        topics = {name: {"id": str(info.id), "partitions": info.partitions, "configs": info.configs}
                  for name, info in sorted(self._topics.items())}
        self.write_json(META_FILE, {"version": META_VERSION, "topics": topics})

    # -------------------------------------------------------------------------------------------- small files

    def write_json(self, name: str, document) -> None:
        """Replace the data directory's file `name` with `document` as JSON, atomically and durably (temp file,
        fsync, rename, fsync the directory: FileSystem.write_file_atomic), through this manager's file system.
        For meta.json and the broker's small files (cluster.json, producer_ids.json). Raises OSError."""
        data = json.dumps(document, indent=1, sort_keys=True).encode()
        self.fs.write_file_atomic(self._path(name), data)

    def read_json(self, name: str):
        """The JSON document in the data directory's file `name`, or None if there is none. A file that is not
        JSON raises StorageError: it was written atomically, so damage is not a torn write and guessing could
        lose data."""
        path = self._path(name)
        try:
            if not self.fs.exists(path):
                return None
            return json.loads(self.fs.read_file(path))
        except ValueError as e:
            raise StorageError(f"{path} is unreadable ({e}); refusing to start") from e
