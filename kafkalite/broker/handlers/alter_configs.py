"""AlterConfigs (key 33): versions 0-2. Replaces a topic's whole set of overrides; dynamic broker settings.

Also the one place where config changes are checked and applied (IncrementalAlterConfigs computes the new
values and calls the same functions):
  - topic: the new override set is validated against the log's table (INVALID_CONFIG with the log's message)
    and handed to LogManager.alter_configs, which persists it;
  - broker (resource name = this node id, or "" for the cluster default, the same thing on one broker): only
    DYNAMIC_BROKER_SETTINGS may change; any other known setting gets INVALID_REQUEST ("Cannot update these
    configs dynamically", as Kafka says), an unknown one INVALID_REQUEST, a bad value INVALID_CONFIG.
    Broker changes take effect at once and are persisted by broker.dynamic_settings (they survive a restart).
    As in Kafka, AlterConfigs replaces the broker's whole set of dynamic settings: those it leaves out go back
    to their configured values; IncrementalAlterConfigs changes only the settings it names.
"""

from __future__ import annotations

import asyncio
import logging

from kafkalite.broker.errors import Rejected, error_code_for
from kafkalite.broker.handlers.describe_configs import (
    BROKER_RESOURCE, DYNAMIC_BROKER_SETTINGS, TOPIC_RESOURCE, check_broker_name,
)
from kafkalite.broker.registry import handler
from kafkalite.config import BROKER_SETTINGS
from kafkalite.log.config import LogConfig
from kafkalite.metadata.local import topic_defaults
from kafkalite.log.errors import InvalidConfig, LogError
from kafkalite.protocol.errors import ErrorCode

log = logging.getLogger("kafkalite.broker")


async def alter_topic(ctx, name: str, overrides: dict[str, str], validate_only: bool) -> None:
    """Make `overrides` the topic's whole set of overrides."""
    if name not in ctx.metadata.image.topics:
        raise Rejected(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic {name} does not exist")
    try:
        if validate_only:
            LogConfig.from_configs(overrides, ctx.metadata.topic_defaults)
        else:
            before = dict(ctx.metadata.image.topic(name).configs)
            await ctx.metadata.alter_configs(name, overrides)
            log.info("topic %s config overrides changed from %s to %s", name, before or "none", overrides or "none")
    except InvalidConfig as e:
        raise Rejected(ErrorCode.INVALID_CONFIG, str(e)) from None


async def alter_broker(ctx, resource_name: str, changes: dict[str, str | None], validate_only: bool) -> None:
    """Set broker settings by Kafka name and persist them; None puts a setting back to its configured value."""
    check_broker_name(ctx, resource_name)
    unknown = sorted(n for n in changes if n not in BROKER_SETTINGS)
    if unknown:
        raise Rejected(ErrorCode.INVALID_REQUEST, f"Unknown broker configs: {', '.join(unknown)}")
    static = sorted(n for n in changes if n not in DYNAMIC_BROKER_SETTINGS)
    if static:
        raise Rejected(ErrorCode.INVALID_REQUEST,
                       f"Cannot update these configs dynamically: {', '.join(static)} (set them in the config file "
                       f"or with --set and restart)")
    config = ctx.config
    before = dict(config.settings)
    try:
        for name, value in changes.items():
            config.set(name, ctx.dynamic_settings.configured[name] if value is None else value)
        defaults = topic_defaults(config)  # the log's own checks of the values that become topic defaults
    except ValueError as e:  # InvalidConfig is a ValueError too
        config.settings = before
        raise Rejected(ErrorCode.INVALID_CONFIG, str(e)) from None
    if validate_only:
        config.settings = before
        return
    try:
        await asyncio.to_thread(ctx.dynamic_settings.save, changes)
    except OSError:
        config.settings = before
        raise
    if defaults != ctx.metadata.topic_defaults:
        await ctx.metadata.set_topic_defaults(defaults)  # topics without their own override follow them
    log.info("broker settings changed at run time: %s", changes)


async def apply_changes(ctx, resource: dict, changes: dict[str, str | None], validate_only: bool) -> None:
    """Apply the full new set of values for one resource. For topics, `changes` is the whole override set."""
    kind, name = resource["resource_type"], resource["resource_name"]
    if kind == TOPIC_RESOURCE:
        await alter_topic(ctx, name, {k: v for k, v in changes.items() if v is not None}, validate_only)
    elif kind == BROKER_RESOURCE:
        await alter_broker(ctx, name, changes, validate_only)
    else:
        raise Rejected(ErrorCode.INVALID_REQUEST, f"Unsupported resource type {kind}")


async def alter_each(ctx, request: dict, new_values) -> list[dict]:
    """The per-resource loop both AlterConfigs APIs share. `new_values(ctx, resource)` returns the changes
    to apply (or raises Rejected)."""
    responses = []
    seen = [(r["resource_type"], r["resource_name"]) for r in request["resources"]]
    for resource in request["resources"]:
        resp = {"error_code": 0, "error_message": None, "resource_type": resource["resource_type"],
                "resource_name": resource["resource_name"]}
        responses.append(resp)
        try:
            if seen.count((resource["resource_type"], resource["resource_name"])) > 1:
                raise Rejected(ErrorCode.INVALID_REQUEST, "Duplicate resource in request")
            names = [c["name"] for c in resource["configs"]]
            if len(set(names)) != len(names):
                raise Rejected(ErrorCode.INVALID_REQUEST, "Duplicate config names for one resource")
            await apply_changes(ctx, resource, new_values(ctx, resource), request["validate_only"])
        except Rejected as e:
            resp["error_code"], resp["error_message"] = e.code, e.message
        except (LogError, OSError) as e:
            resp["error_code"], resp["error_message"] = error_code_for(e), str(e)
    return responses


def replacement(ctx, resource: dict) -> dict[str, str | None]:
    # Kafka's AlterConfigs drops entries with a null value: for a topic they are simply not overridden.
    changes = {c["name"]: c["value"] for c in resource["configs"]}
    if resource["resource_type"] == BROKER_RESOURCE:
        for name in ctx.dynamic_settings.values:  # the whole set is replaced: the others are removed
            changes.setdefault(name, None)
    return changes


@handler("AlterConfigs")
async def handle(ctx, request):
    return {"throttle_time_ms": 0, "responses": await alter_each(ctx, request, replacement)}
