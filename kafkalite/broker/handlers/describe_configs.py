"""DescribeConfigs (key 32): versions 1-4. Topic (2) and broker (4) resources, synonyms, documentation (v3+).

This module is also the one place where a config table becomes DescribeConfigs entries, and where a
config's value is traced back to its source (topic override, broker setting, default): AlterConfigs and
IncrementalAlterConfigs import the resource types and names from here.
"""

from __future__ import annotations

from kafkalite.broker.errors import Rejected
from kafkalite.broker.registry import handler
from kafkalite.config import BROKER_SETTINGS
from kafkalite.log.config import TOPIC_CONFIGS, format_value
from kafkalite.protocol.errors import ErrorCode

# ConfigResource.Type
TOPIC_RESOURCE, BROKER_RESOURCE = 2, 4

# DescribeConfigsResponse.ConfigSource
DYNAMIC_TOPIC_CONFIG = 1
DYNAMIC_BROKER_CONFIG = 2
DYNAMIC_DEFAULT_BROKER_CONFIG = 3
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5

# DescribeConfigsResponse ConfigType (v3+), by Kafka's ConfigDef type name.
CONFIG_TYPES = {"boolean": 1, "string": 2, "int": 3, "short": 4, "long": 5, "double": 6, "list": 7,
                "class": 8, "password": 9}

# Topic configs whose default comes from a broker setting (Kafka's ServerTopicConfigSynonyms, restricted to the
# settings kafkalite has). Broker.topic_defaults applies the same mapping.
TOPIC_SETTING_SYNONYMS = {
    "segment.bytes": "log.segment.bytes",
    "retention.ms": "log.retention.ms",
    "retention.bytes": "log.retention.bytes",
    "max.message.bytes": "message.max.bytes",
    "flush.messages": "log.flush.interval.messages",
    "flush.ms": "log.flush.interval.ms",
    "kafkalite.durability": "kafkalite.durability",
}

# The broker setting Kafka names a topic config's default by (its ServerTopicConfigSynonyms), for the topic
# configs whose broker setting kafkalite does not have: the synonym chain names the default as Kafka does.
KAFKA_DEFAULT_SETTINGS = {
    "cleanup.policy": "log.cleanup.policy",
    "delete.retention.ms": "log.cleaner.delete.retention.ms",
    "file.delete.delay.ms": "log.segment.delete.delay.ms",
    "index.interval.bytes": "log.index.interval.bytes",
    "max.compaction.lag.ms": "log.cleaner.max.compaction.lag.ms",
    "message.timestamp.type": "log.message.timestamp.type",
    "message.timestamp.before.max.ms": "log.message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms": "log.message.timestamp.after.max.ms",
    "min.cleanable.dirty.ratio": "log.cleaner.min.cleanable.ratio",
    "min.compaction.lag.ms": "log.cleaner.min.compaction.lag.ms",
    "segment.index.bytes": "log.index.size.max.bytes",
}

# BROKER_SETTINGS holds Python types; these are the ones Kafka declares LONG rather than INT.
_LONG_BROKER_SETTINGS = frozenset({
    "log.retention.ms", "log.retention.bytes", "log.retention.check.interval.ms", "log.flush.interval.messages",
    "log.flush.interval.ms", "connections.max.idle.ms",
})

# Broker settings that AlterConfigs may change while the broker runs (Kafka's dynamic broker configs that
# kafkalite has). Every other broker setting is read-only.
DYNAMIC_BROKER_SETTINGS = frozenset({
    "log.segment.bytes", "log.retention.ms", "log.retention.bytes", "message.max.bytes",
    "log.flush.interval.messages", "log.flush.interval.ms", "max.connections",
    "transaction.partition.verification.enable",  # read by every Produce, so a change applies to the next one
})


def setting_text(value) -> str | None:
    """A broker setting as Kafka prints it (None: unset, as Kafka's null)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def broker_setting_type(name: str) -> str:
    kind = BROKER_SETTINGS[name][0]
    if kind is bool:
        return "boolean"
    if kind is int:
        return "long" if name in _LONG_BROKER_SETTINGS else "int"
    return "string"


def check_broker_name(ctx, resource_name: str) -> None:
    """A broker resource is named by this broker's id, or "" for the cluster-wide default."""
    if resource_name not in ("", str(ctx.node_id)):
        raise Rejected(ErrorCode.INVALID_REQUEST,
                       f"Unexpected broker id, expected {ctx.node_id} or empty string, but received {resource_name}")


def broker_setting_chain(ctx, name: str) -> list[tuple[str, str, int]]:
    """(name, value, source) of a broker setting, the value in force first: set by AlterConfigs at run time
    (DYNAMIC_BROKER_CONFIG; one broker is its own cluster default), configured at start (file, flag or
    environment) where that differs from Kafka's default, and the default."""
    dynamic, configured = ctx.dynamic_settings.values, ctx.dynamic_settings.configured[name]
    default = BROKER_SETTINGS[name][1]
    chain = [(name, setting_text(dynamic[name]), DYNAMIC_BROKER_CONFIG)] if name in dynamic else []
    if configured != default:
        chain.append((name, setting_text(configured), STATIC_BROKER_CONFIG))
    chain.append((name, setting_text(default), DEFAULT_CONFIG))
    return chain


def topic_config_chain(ctx, spec, overrides: dict[str, str]) -> list[tuple[str, str, int]]:
    """(name, value, source) of a topic config in order of precedence: override, broker setting, default."""
    chain = [(spec.name, overrides[spec.name], DYNAMIC_TOPIC_CONFIG)] if spec.name in overrides else []
    setting = TOPIC_SETTING_SYNONYMS.get(spec.name)
    if setting is not None:
        chain += broker_setting_chain(ctx, setting)
    else:
        chain.append((KAFKA_DEFAULT_SETTINGS.get(spec.name, spec.name), format_value(spec, spec.default),
                      DEFAULT_CONFIG))
    return chain


def config_entry(name: str, value: str, chain, read_only: bool, kafka_type: str, doc: str, request: dict) -> dict:
    return {
        "name": name, "value": value, "read_only": read_only, "config_source": chain[0][2], "is_sensitive": False,
        "synonyms": [{"name": n, "value": v, "source": s} for n, v, s in chain] if request["include_synonyms"] else [],
        "config_type": CONFIG_TYPES[kafka_type],
        "documentation": doc if request["include_documentation"] else None,
    }


def topic_entries(ctx, name: str, request: dict, keys) -> list[dict]:
    topic = ctx.metadata.image.topic(name)
    if topic is None:
        raise Rejected(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic {name} does not exist")
    effective = ctx.metadata.topic_config(name).to_configs()  # what the log enforces, whatever the chain says
    return [
        config_entry(spec.name, effective[spec.name], topic_config_chain(ctx, spec, topic.configs), False,
                     spec.type, spec.doc, request)
        for spec in TOPIC_CONFIGS
        if keys is None or spec.name in keys
    ]


def broker_entries(ctx, name: str, request: dict, keys) -> list[dict]:
    check_broker_name(ctx, name)
    return [
        config_entry(setting, setting_text(ctx.config[setting]), broker_setting_chain(ctx, setting),
                     setting not in DYNAMIC_BROKER_SETTINGS, broker_setting_type(setting), doc, request)
        for setting, (_kind, _default, doc) in BROKER_SETTINGS.items()
        if keys is None or setting in keys
    ]


ENTRIES_BY_RESOURCE_TYPE = {TOPIC_RESOURCE: topic_entries, BROKER_RESOURCE: broker_entries}


@handler("DescribeConfigs")
async def handle(ctx, request):
    results = []
    for resource in request["resources"]:
        result = {"error_code": 0, "error_message": None, "resource_type": resource["resource_type"],
                  "resource_name": resource["resource_name"], "configs": []}
        results.append(result)
        keys = resource["configuration_keys"]  # null: all; names Kafka does not know are left out silently
        entries = ENTRIES_BY_RESOURCE_TYPE.get(resource["resource_type"])
        try:
            if entries is None:
                raise Rejected(ErrorCode.INVALID_REQUEST, f"Unsupported resource type {resource['resource_type']}")
            result["configs"] = entries(ctx, resource["resource_name"], request,
                                        None if keys is None else set(keys))
        except Rejected as e:
            result["error_code"], result["error_message"] = e.code, e.message
    return {"throttle_time_ms": 0, "results": results}
