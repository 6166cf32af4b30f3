"""Group coordinator settings, named as Kafka's broker settings are."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

# dataclass field -> Kafka broker setting name
KAFKA_NAMES = {
    "initial_rebalance_delay_ms": "group.initial.rebalance.delay.ms",
    "min_session_timeout_ms": "group.min.session.timeout.ms",
    "max_session_timeout_ms": "group.max.session.timeout.ms",
    "max_size": "group.max.size",
    "offsets_retention_minutes": "offsets.retention.minutes",
    "offsets_retention_check_interval_ms": "offsets.retention.check.interval.ms",
    "offsets_topic_num_partitions": "offsets.topic.num.partitions",
    "offset_metadata_max_bytes": "offset.metadata.max.bytes",
}


@dataclass(frozen=True)
class GroupConfig:
    # Kafka waits 3 s for more members before a new group's first rebalance; a short wait still
    # gathers consumers started together and gets a lone consumer its assignment well within 1 s.
    initial_rebalance_delay_ms: int = 100
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1800000
    max_size: int = 2147483647  # members per group; Kafka's default, i.e. no limit
    offsets_retention_minutes: int = 10080  # 7 days
    offsets_retention_check_interval_ms: int = 600000
    offsets_topic_num_partitions: int = 50
    offset_metadata_max_bytes: int = 4096

    @property
    def offsets_retention_ms(self) -> int:
        return self.offsets_retention_minutes * 60_000

    @classmethod
    def from_mapping(cls, settings: "Mapping[str, Any] | GroupConfig | None") -> "GroupConfig":
        """Build from a mapping keyed by Kafka names or field names; absent keys keep the defaults."""
        if settings is None:
            return cls()
        if isinstance(settings, GroupConfig):
            return settings
        values = {}
        for f in fields(cls):
            for name in (KAFKA_NAMES[f.name], f.name):
                if name in settings:
                    values[f.name] = int(settings[name])
                    break
        return cls(**values)
