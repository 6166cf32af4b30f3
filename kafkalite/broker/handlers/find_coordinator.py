"""FindCoordinator (key 10): versions 0-4 (v4 batches coordinator_keys).

A group's coordinator (key type 0) is the leader of its `__consumer_offsets` partition, abs(Java hashCode(group)) % the
partition count, from the metadata image: standalone always this broker, in a cluster whichever broker leads
that partition (none: COORDINATOR_NOT_AVAILABLE, which clients retry). In a cluster `__consumer_offsets` is
created by the first FindCoordinator, as in Kafka, with offsets.topic.replication.factor replicas, once that many
brokers are live. A transactional id's (key type 1) is the leader of its `__transaction_state` partition, by the
same hash (standalone: this broker).
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


async def _find(ctx, key: str, key_type: int) -> dict:
    if key_type not in (GROUP_KEY, TRANSACTION_KEY):
        return _refused(key, ErrorCode.INVALID_REQUEST, f"unknown coordinator key type {key_type}")
    image = ctx.metadata.image
    if key_type == TRANSACTION_KEY:
        return _find_transaction_coordinator(ctx, key)
    offsets = image.topic(OFFSETS_TOPIC)
    if offsets is None:
        await _create_offsets_topic(ctx)
        return _refused(key, ErrorCode.COORDINATOR_NOT_AVAILABLE, f"{OFFSETS_TOPIC} is being created")
    leader = image.leader_of(OFFSETS_TOPIC, partition_for(key, len(offsets.partitions)))
    if leader is None:
        return _refused(key, ErrorCode.COORDINATOR_NOT_AVAILABLE, "the coordinator's partition has no leader")
    return {"key": key, "node_id": leader.node_id, "host": leader.host, "port": leader.port,
            "error_code": ErrorCode.NONE, "error_message": None}


def _find_transaction_coordinator(ctx, key: str) -> dict:
    image = ctx.metadata.image
    topic = image.topic(TRANSACTION_STATE_TOPIC)
    if topic is None or ctx.transactions is None:  # cluster mode: transactions are not coordinated there yet
        return _refused(key, ErrorCode.COORDINATOR_NOT_AVAILABLE, "no transaction coordinator")
    leader = image.leader_of(TRANSACTION_STATE_TOPIC, partition_for(key, len(topic.partitions)))
    if leader is None:
        return _refused(key, ErrorCode.COORDINATOR_NOT_AVAILABLE, "the coordinator's partition has no leader")
    return {"key": key, "node_id": leader.node_id, "host": leader.host, "port": leader.port,
            "error_code": ErrorCode.NONE, "error_message": None}


async def _create_offsets_topic(ctx) -> None:
    factor = ctx.config["offsets.topic.replication.factor"]
    if factor > len(ctx.metadata.image.brokers):
        log.warning("%s needs %d live brokers (offsets.topic.replication.factor); %d are live", OFFSETS_TOPIC,
                    factor, len(ctx.metadata.image.brokers))
        return
    try:
        await ctx.metadata.create_topic(
            OFFSETS_TOPIC, ctx.config["offsets.topic.num.partitions"],
            {"cleanup.policy": "compact", "segment.bytes": str(100 * 1024 * 1024)}, factor)
        log.info("created %s with %d replica(s) per partition", OFFSETS_TOPIC, factor)
    except LogError as e:  # another broker created it first
        log.debug("creating %s: %s", OFFSETS_TOPIC, e)
    except Exception as e:  # not visible yet, or the metadata store is unreachable: the client retries anyway
        log.warning("cannot create %s yet: %s", OFFSETS_TOPIC, e)


@handler("FindCoordinator")
async def handle(ctx, request):
    key_type = request.get("key_type", GROUP_KEY)
    if ctx.api_version >= 4:
        return {"throttle_time_ms": 0,
                "coordinators": [await _find(ctx, key, key_type) for key in request["coordinator_keys"]]}
    found = await _find(ctx, request["key"], key_type)
    del found["key"]
    return {"throttle_time_ms": 0, **found}
