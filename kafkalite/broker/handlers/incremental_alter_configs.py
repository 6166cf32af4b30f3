"""IncrementalAlterConfigs (key 44): versions 0-1. SET, DELETE, APPEND and SUBTRACT (list configs) per config.

The operations are turned into the resource's new values here; alter_configs.py checks and applies them.
"""

from __future__ import annotations

from kafkalite.broker.errors import Rejected
from kafkalite.broker.handlers.alter_configs import alter_each
from kafkalite.broker.handlers.describe_configs import TOPIC_RESOURCE
from kafkalite.broker.registry import handler
from kafkalite.log.config import CONFIGS_BY_NAME
from kafkalite.protocol.errors import ErrorCode

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def current_list(ctx, resource: dict, name: str) -> list[str]:
    """The value APPEND and SUBTRACT start from: the topic's override, else the value in force."""
    spec = CONFIGS_BY_NAME.get(name) if resource["resource_type"] == TOPIC_RESOURCE else None
    if spec is None or spec.type != "list":
        raise Rejected(ErrorCode.INVALID_CONFIG, f"Config value append/subtract is not allowed for config key: {name}")
    topic = resource["resource_name"]
    value = ctx.metadata.image.topic(topic).configs.get(name, ctx.metadata.topic_config(topic).to_configs()[name])
    return [item.strip() for item in value.split(",") if item.strip()]


def incremental_changes(ctx, resource: dict) -> dict[str, str | None]:
    """The resource's new values: for a topic its whole override set, for the broker the settings to change."""
    is_topic = resource["resource_type"] == TOPIC_RESOURCE
    if is_topic:
        topic = ctx.metadata.image.topic(resource["resource_name"])
        if topic is None:
            raise Rejected(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic {resource['resource_name']} does not exist")
        values = dict(topic.configs)
    else:
        values = {}
    for change in resource["configs"]:
        name, op, value = change["name"], change["config_operation"], change["value"]
        if op not in (SET, DELETE, APPEND, SUBTRACT):
            raise Rejected(ErrorCode.INVALID_REQUEST, f"Unknown config operation {op} for {name}")
        if op != DELETE and value is None:
            raise Rejected(ErrorCode.INVALID_REQUEST, f"Null value not supported for: {name}")
        if op == SET:
            values[name] = value
        elif op == DELETE:
            if is_topic:
                values.pop(name, None)
            else:
                values[name] = None  # back to the broker's default
        else:
            given = [item.strip() for item in value.split(",") if item.strip()]
            old = current_list(ctx, resource, name)
            new = old + [i for i in given if i not in old] if op == APPEND else [i for i in old if i not in given]
            values[name] = ",".join(new)
    return values


@handler("IncrementalAlterConfigs")
async def handle(ctx, request):
    return {"throttle_time_ms": 0, "responses": await alter_each(ctx, request, incremental_changes)}
