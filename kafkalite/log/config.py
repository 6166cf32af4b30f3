"""Per-topic log configuration: Kafka's topic config names, types and defaults, validated.

TOPIC_CONFIGS is the table DescribeConfigs lists (name, type, default, doc). LogConfig holds the parsed values;
LogConfig.from_configs({"retention.ms": "1000"}, defaults=broker_defaults) applies overrides on top of defaults.
LogConfig.producer_id_expiration_ms is the one field that is not a topic config (see there).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from kafkalite.log.errors import InvalidConfig

LONG_MAX = 2**63 - 1
INT_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class ConfigDef:
    name: str  # Kafka's name, e.g. "segment.bytes"
    field: str  # LogConfig attribute, e.g. "segment_bytes"
    type: str  # Kafka's type name: int, long, string, list, boolean, double
    default: Any
    doc: str
    check: Callable[[Any], str | None]  # returns an error message, or None when the value is fine


def _at_least(low):
    return lambda v: None if v >= low else f"must be at least {low}"


def _between(low, high):
    return lambda v: None if low <= v <= high else f"must be between {low} and {high}"


def _one_of(*choices):
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def _policy(v: str):
    parts = [p.strip() for p in v.split(",") if p.strip()]
    if not parts or any(p not in ("delete", "compact") for p in parts):
        return "must be a list of delete and/or compact"
    return None


_COMPRESSION = ("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")

TOPIC_CONFIGS: tuple[ConfigDef, ...] = (
    ConfigDef("cleanup.policy", "cleanup_policy", "list", "delete",
              "delete: remove old segments by retention.ms/retention.bytes; compact: keep the newest record per key; "
              "both may be given (compact,delete).", _policy),
    ConfigDef("compression.type", "compression_type", "string", "producer",
              "Stored as given; kafkalite keeps the producer's compression (only 'producer' changes nothing).",
              _one_of(*_COMPRESSION)),
    ConfigDef("delete.retention.ms", "delete_retention_ms", "long", 86400000,
              "How long a tombstone (null value) is kept after compaction reaches it.", _at_least(0)),
    ConfigDef("file.delete.delay.ms", "file_delete_delay_ms", "long", 60000,
              "Accepted for compatibility; kafkalite deletes files at once.", _at_least(0)),
    ConfigDef("flush.messages", "flush_messages", "long", LONG_MAX,
              "fsync the log after this many messages (records) were appended since the last fsync.", _at_least(1)),
    ConfigDef("flush.ms", "flush_ms", "long", LONG_MAX,
              "fsync the log when its oldest unflushed append is this old (checked by LogManager.flush_due).",
              _at_least(0)),
    ConfigDef("index.interval.bytes", "index_interval_bytes", "int", 4096,
              "Bytes of log between two offset index entries.", _between(0, INT_MAX)),
    ConfigDef("max.compaction.lag.ms", "max_compaction_lag_ms", "long", LONG_MAX,
              "Accepted for compatibility (not enforced).", _at_least(1)),
    ConfigDef("max.message.bytes", "max_message_bytes", "int", 1048588,
              "Largest record batch the log accepts (after the producer's compression).", _between(0, INT_MAX)),
    ConfigDef("message.timestamp.type", "message_timestamp_type", "string", "CreateTime",
              "CreateTime keeps the producer's timestamps; LogAppendTime stamps each batch with the broker's clock.",
              _one_of("CreateTime", "LogAppendTime")),
    ConfigDef("message.timestamp.difference.max.ms", "message_timestamp_difference_max_ms", "long", LONG_MAX,
              "Deprecated form of before/after: the largest allowed |batch timestamp - broker time| (CreateTime).",
              _at_least(0)),
    ConfigDef("message.timestamp.before.max.ms", "message_timestamp_before_max_ms", "long", LONG_MAX,
              "How far in the past a CreateTime timestamp may be.", _at_least(0)),
    ConfigDef("message.timestamp.after.max.ms", "message_timestamp_after_max_ms", "long", 3600000,
              "How far in the future a CreateTime timestamp may be (one hour, Kafka 4's default: KIP-1030).",
              _at_least(0)),
    ConfigDef("min.cleanable.dirty.ratio", "min_cleanable_dirty_ratio", "double", 0.5,
              "Accepted for compatibility; compaction runs whenever compact() is called.", _between(0.0, 1.0)),
    ConfigDef("min.compaction.lag.ms", "min_compaction_lag_ms", "long", 0,
              "A segment is compacted only once its newest timestamp is this old.", _at_least(0)),
    ConfigDef("min.insync.replicas", "min_insync_replicas", "int", 1,
              "Stored for the broker (a single broker always has one in-sync replica).", _at_least(1)),
    ConfigDef("retention.bytes", "retention_bytes", "long", -1,
              "Delete the oldest closed segments while the partition is larger than this; -1: no size limit.",
              _at_least(-1)),
    ConfigDef("retention.ms", "retention_ms", "long", 604800000,
              "Delete closed segments whose newest timestamp is older than this; -1: keep forever.", _at_least(-1)),
    ConfigDef("segment.bytes", "segment_bytes", "int", 1073741824,
              "Roll to a new segment before the .log file would exceed this size.", _between(14, INT_MAX)),
    ConfigDef("segment.index.bytes", "segment_index_bytes", "int", 10485760,
              "Roll to a new segment when its offset index reaches this size.", _between(8, INT_MAX)),
    ConfigDef("segment.ms", "segment_ms", "long", 604800000,
              "Roll to a new segment when the active one is this old (since it was opened).", _at_least(1)),
    ConfigDef("kafkalite.durability", "durability", "string", "always",
              "always: acks=all is acknowledged after fsync (group commit); interval: only flush.messages/flush.ms "
              "fsync, acks=all is acknowledged once written to the OS; never: fsync only on roll-checkpoint and "
              "clean shutdown. acks=1 never waits for fsync. See docs/storage.md.",
              _one_of("always", "interval", "never")),
)

CONFIGS_BY_NAME: dict[str, ConfigDef] = {c.name: c for c in TOPIC_CONFIGS}


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Parsed topic configuration, with Kafka's defaults. Field names are Kafka's names with '_' for '.'."""

    cleanup_policy: str = "delete"
    compression_type: str = "producer"
    delete_retention_ms: int = 86400000
    file_delete_delay_ms: int = 60000
    flush_messages: int = LONG_MAX
    flush_ms: int = LONG_MAX
    index_interval_bytes: int = 4096
    max_compaction_lag_ms: int = LONG_MAX
    max_message_bytes: int = 1048588
    message_timestamp_type: str = "CreateTime"
    message_timestamp_difference_max_ms: int = LONG_MAX
    message_timestamp_before_max_ms: int = LONG_MAX
    message_timestamp_after_max_ms: int = 3600000
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    min_insync_replicas: int = 1
    retention_bytes: int = -1
    retention_ms: int = 604800000
    segment_bytes: int = 1073741824
    segment_index_bytes: int = 10485760
    segment_ms: int = 604800000
    durability: str = "always"
    # Not a topic config (Kafka's producer.id.expiration.ms is a broker setting), so it is not in TOPIC_CONFIGS:
    # topics cannot set it and DescribeConfigs does not list it. Broker.topic_defaults copies the broker setting
    # into the defaults, and every topic's LogConfig inherits it from there.
    producer_id_expiration_ms: int = 86400000

    @classmethod
    def from_configs(cls, configs: dict[str, Any] | None, defaults: "LogConfig | None" = None) -> "LogConfig":
        """Apply Kafka-named overrides (string values, as on the wire) on top of `defaults` (or Kafka's).

        Raises InvalidConfig (a ValueError) naming the config for an unknown name or a bad value."""
        base = defaults if defaults is not None else cls()
        changes = {}
        for name, raw in (configs or {}).items():
            spec = CONFIGS_BY_NAME.get(name)
            if spec is None:
                raise InvalidConfig(f"Unknown topic config name: {name}")
            changes[spec.field] = parse_value(spec, raw)
        return dataclasses.replace(base, **changes)

    def get(self, name: str) -> Any:
        """The value of a config by its Kafka name."""
        return getattr(self, CONFIGS_BY_NAME[name].field)

    def to_configs(self) -> dict[str, str]:
        """Every config by Kafka name, as the strings DescribeConfigs returns."""
        return {c.name: format_value(c, getattr(self, c.field)) for c in TOPIC_CONFIGS}

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy.split(",")

    @property
    def delete(self) -> bool:
        return "delete" in self.cleanup_policy.split(",")

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == "LogAppendTime"

    @property
    def acks_all_waits_for_fsync(self) -> bool:
        """Whether the broker must fsync (PartitionLog.flush) before acknowledging an acks=all produce."""
        return self.durability == "always"

    def timestamp_bounds(self, now_ms: int) -> tuple[int, int]:
        """(lowest, highest) CreateTime timestamp accepted at now_ms, from the before/after/difference configs."""
        before = min(self.message_timestamp_before_max_ms, self.message_timestamp_difference_max_ms)
        after = min(self.message_timestamp_after_max_ms, self.message_timestamp_difference_max_ms)
        low = now_ms - before if before < LONG_MAX else -LONG_MAX
        high = now_ms + after if after < LONG_MAX else LONG_MAX
        return low, high


def parse_value(spec: ConfigDef, raw: Any) -> Any:
    text = str(raw).strip() if raw is not None else ""
    if raw is None or text == "":
        raise InvalidConfig(f"Invalid value {raw!r} for configuration {spec.name}: a value is required")
    try:
        if spec.type in ("int", "long"):
            if isinstance(raw, bool):
                raise ValueError
            value: Any = int(text)
            limit = INT_MAX if spec.type == "int" else LONG_MAX
            if not -limit - 1 <= value <= limit:
                raise ValueError
        elif spec.type == "double":
            value = float(text)
        elif spec.type == "boolean":
            if text.lower() not in ("true", "false"):
                raise ValueError
            value = text.lower() == "true"
        elif spec.type == "list":
            value = ",".join(p.strip() for p in text.split(",") if p.strip())
        else:
            value = text
    except ValueError:
        raise InvalidConfig(f"Invalid value {raw!r} for configuration {spec.name}: expected a {spec.type}") from None
    problem = spec.check(value)
    if problem:
        raise InvalidConfig(f"Invalid value {raw!r} for configuration {spec.name}: {problem}")
    return value


def format_value(spec: ConfigDef, value: Any) -> str:
    if spec.type == "boolean":
        return "true" if value else "false"
    return str(value)
