import pytest

from kafkalite.log import TOPIC_CONFIGS, InvalidConfig, LogConfig
from kafkalite.log.config import LONG_MAX


def test_table_defaults_match_dataclass_defaults():
    config = LogConfig()
    for spec in TOPIC_CONFIGS:
        assert getattr(config, spec.field) == spec.default, spec.name
        assert spec.doc and spec.type in ("int", "long", "string", "list", "double", "boolean")


def test_kafka_defaults():
    c = LogConfig()
    assert c.segment_bytes == 1 << 30 and c.segment_ms == 7 * 86400000 and c.index_interval_bytes == 4096
    assert c.retention_ms == 7 * 86400000 and c.retention_bytes == -1 and c.cleanup_policy == "delete"
    assert c.max_message_bytes == 1048588 and c.flush_messages == LONG_MAX and c.delete_retention_ms == 86400000
    assert c.acks_all_waits_for_fsync


def test_from_configs_parses_on_top_of_defaults():
    defaults = LogConfig.from_configs({"retention.ms": "1000"})
    c = LogConfig.from_configs({"cleanup.policy": "compact, delete", "segment.bytes": "1024"}, defaults=defaults)
    assert c.retention_ms == 1000 and c.segment_bytes == 1024
    assert c.compact and c.delete and c.cleanup_policy == "compact,delete"
    assert c.to_configs()["segment.bytes"] == "1024"
    assert LogConfig.from_configs({"message.timestamp.type": "LogAppendTime"}).log_append_time


@pytest.mark.parametrize("name,value,needle", [
    ("no.such.config", "1", "Unknown topic config name: no.such.config"),
    ("segment.bytes", "abc", "segment.bytes"),
    ("segment.bytes", "10", "between 14 and"),
    ("retention.ms", "-2", "retention.ms"),
    ("cleanup.policy", "forever", "cleanup.policy"),
    ("message.timestamp.type", "Now", "CreateTime"),
    ("segment.bytes", str(2**31), "segment.bytes"),
    ("flush.messages", "", "flush.messages"),
])
def test_bad_names_and_values_raise_value_error(name, value, needle):
    with pytest.raises(ValueError) as e:
        LogConfig.from_configs({name: value})
    assert needle in str(e.value)
    assert isinstance(e.value, InvalidConfig)


def test_timestamp_bounds():
    c = LogConfig.from_configs({"message.timestamp.before.max.ms": "100", "message.timestamp.after.max.ms": "10"})
    assert c.timestamp_bounds(1000) == (900, 1010)
    c = LogConfig.from_configs({"message.timestamp.difference.max.ms": "5"})
    assert c.timestamp_bounds(1000) == (995, 1005)
