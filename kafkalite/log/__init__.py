"""The durable log store: segments, indexes, recovery, retention, compaction. Plain synchronous file code.

Public interface: PartitionLog (partition.py), LogManager (manager.py), LogConfig/TOPIC_CONFIGS (config.py),
FileSystem (fs.py), LeaderEpochCache (leader_epoch.py), errors (errors.py). On-disk formats: docs/storage.md.
Tests simulate power cuts and I/O faults with kafkalite.log.fs_faulty.FaultyFileSystem, which is not part of this
interface.
"""

from kafkalite.log.config import TOPIC_CONFIGS, LogConfig
from kafkalite.log.errors import (
    CorruptRecord, InvalidConfig, InvalidPartitions, InvalidProducerEpoch, InvalidTimestamp, InvalidTopicName,
    LogError, OffsetOutOfRange, OutOfOrderSequence, RecordTooLarge, StorageError, TopicExists, UnexpectedAppendOffset,
    UnknownTopic,
)
from kafkalite.log.fs import FileSystem
from kafkalite.log.leader_epoch import LeaderEpochCache
from kafkalite.log.manager import LogManager, OpenSummary, TopicInfo, validate_topic_name
from kafkalite.log.partition import AppendResult, PartitionLog, RecoveryInfo

__all__ = [
    "TOPIC_CONFIGS", "LogConfig", "CorruptRecord", "InvalidConfig", "InvalidPartitions", "InvalidProducerEpoch",
    "InvalidTimestamp", "InvalidTopicName", "LogError", "OffsetOutOfRange", "OutOfOrderSequence",
    "RecordTooLarge", "StorageError", "TopicExists", "UnexpectedAppendOffset", "UnknownTopic", "FileSystem",
    "LeaderEpochCache", "LogManager", "OpenSummary", "TopicInfo", "validate_topic_name", "AppendResult",
    "PartitionLog", "RecoveryInfo",
]
