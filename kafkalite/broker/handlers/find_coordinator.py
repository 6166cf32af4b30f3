"""FindCoordinator (key 10): versions 0-4 (v4 batches coordinator_keys).

A group's coordinator (key type 0) is the leader of its `__consumer_offsets` partition, abs(Java hashCode(group)) % the
partition count, from the metadata image: standalone always this broker, in a cluster whichever broker leads
that partition (none: COORDINATOR_NOT_AVAILABLE, which clients retry). In a cluster `__consumer_offsets` is
created by the first FindCoordinator, as in Kafka, with offsets.topic.replication.factor replicas, once that many
brokers are live. A transactional id's (key type 1) is the leader of its `__transaction_state` partition, by the
same hash (standalone: this broker); in a cluster the first such request creates `__transaction_state`, with
transaction.state.log.replication.factor replicas once that many brokers are live.
"""

from __future__ import annotations

import logging

from kafkalite.broker.registry import handler
from kafkalite.group import OFFSETS_TOPIC, partition_for
from kafkalite.log.errors import LogError
from kafkalite.protocol.errors import ErrorCode
from kafkalite.txn import TRANSACTION_STATE_TOPIC

log = logging.getLogger("kafkalite.broker")

GROUP_KEY, TRANSACTION_KEY = 0, 1


def _refused(key: str, code: int, message: str | None) -> dict:
    return {"key": key, "node_id": -1, "host": "", "port": -1, "error_code": code, "error_message": message}


# Per key type: the internal topic whose partition leaders coordinate, and the prefix of its settings
# (PREFIX.num.partitions, PREFIX.replication.factor).
_COORDINATING_TOPICS = {GROUP_KEY: (OFFSETS_TOPIC, "offsets.topic"),
                        TRANSACTION_KEY: (TRANSACTION_STATE_TOPIC, "transaction.state.log")}


async def _find(ctx, key: str, key_type: int) -> dict:
    if key_type not in _COORDINATING_TOPICS:
        return _refused(key, ErrorCode.INVALID_REQUEST, f"unknown coordinator key type {key_type}")
    name, prefix = _COORDINATING_TOPICS[key_type]
    image = ctx.metadata.image
    topic = image.topic(name)
    if topic is None:
        await _create_internal_topic(ctx, name, prefix)
        return _refused(key, ErrorCode.COORDINATOR_NOT_AVAILABLE, f"{name} is being created")
    leader = image.leader_of(name, partition_for(key, len(topic.partitions)))
    if leader is None:
        return _refused(key, ErrorCode.COORDINATOR_NOT_AVAILABLE, "the coordinator's partition has no leader")
    return {"key": key, "node_id": leader.node_id, "host": leader.host, "port": leader.port,
            "error_code": ErrorCode.NONE, "error_message": None}


async def _create_internal_topic(ctx, name: str, prefix: str) -> None:
    """Cluster mode (standalone creates both at start): PREFIX.replication.factor replicas once that many
    brokers are live, as Kafka refuses to create them smaller; __transaction_state also gets
    transaction.state.log.min.isr as its min.insync.replicas (at most its replication factor)."""
    factor = ctx.config[f"{prefix}.replication.factor"]
    live = len(ctx.metadata.image.brokers)
    if factor > live:
        log.warning("%s needs %d live brokers (%s.replication.factor); %d are live", name, factor, prefix, live)
        return
    configs = {"cleanup.policy": "compact", "segment.bytes": str(100 * 1024 * 1024)}
    if name == TRANSACTION_STATE_TOPIC:
        configs["min.insync.replicas"] = str(min(ctx.config["transaction.state.log.min.isr"], factor))
    try:
        await ctx.metadata.create_topic(name, ctx.config[f"{prefix}.num.partitions"], configs, factor)
        log.info("created %s with %d replica(s) per partition", name, factor)
    except LogError as e:  # another broker created it first
        log.debug("creating %s: %s", name, e)
    except Exception as e:  # not visible yet, or the metadata store is unreachable: the client retries anyway
        log.warning("cannot create %s yet: %s", name, e)


@handler("FindCoordinator")
async def handle(ctx, request):
    key_type = request.get("key_type", GROUP_KEY)
    if ctx.api_version >= 4:
        return {"throttle_time_ms": 0,
                "coordinators": [await _find(ctx, key, key_type) for key in request["coordinator_keys"]]}
    found = await _find(ctx, request["key"], key_type)
    del found["key"]
    return {"throttle_time_ms": 0, **found}
