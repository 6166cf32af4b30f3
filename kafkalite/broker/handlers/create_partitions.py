"""CreatePartitions (key 37): versions 0-3. Adds partitions to a topic; validate_only; assignments name this node."""

from __future__ import annotations

import logging

from kafkalite.broker.errors import Rejected, error_code_for
from kafkalite.broker.registry import handler
from kafkalite.group import OFFSETS_TOPIC
from kafkalite.log.errors import LogError
from kafkalite.log.manager import MAX_PARTITIONS_PER_REQUEST
from kafkalite.protocol.errors import ErrorCode

log = logging.getLogger("kafkalite.broker")


def check(ctx, topic: dict, names: list[str]) -> None:
    """Raises Rejected when the topic's new partition count cannot be applied (Kafka's messages)."""
    name, count = topic["name"], topic["count"]
    if names.count(name) > 1:
        raise Rejected(ErrorCode.INVALID_REQUEST, "Duplicate topic in request.")
    image = ctx.metadata.image.topic(name)
    if image is None:
        raise Rejected(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.")
    if name == OFFSETS_TOPIC:
        # Groups are placed on its partitions by hash: a new count would move them away from their offsets.
        raise Rejected(ErrorCode.INVALID_TOPIC_EXCEPTION, f"the partition count of {OFFSETS_TOPIC} is fixed")
    current = len(image.partitions)
    if count < current:
        raise Rejected(ErrorCode.INVALID_PARTITIONS,
                       f"Topic currently has {current} partitions, which is higher than the requested {count}.")
    if count == current:
        raise Rejected(ErrorCode.INVALID_PARTITIONS, f"Topic already has {current} partitions.")
    if count - current > MAX_PARTITIONS_PER_REQUEST:
        raise Rejected(ErrorCode.INVALID_PARTITIONS,
                       f"Adding {count - current} partitions is more than {MAX_PARTITIONS_PER_REQUEST} at once.")
    assignments = topic["assignments"]
    if assignments is not None:
        if len(assignments) != count - current:
            raise Rejected(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                           f"Increasing the number of partitions by {count - current} but {len(assignments)} "
                           f"assignments provided.")
        for a in assignments:
            if a["broker_ids"] != [ctx.node_id]:
                raise Rejected(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                               f"Invalid replica assignment {a['broker_ids']}: only broker {ctx.node_id} exists")


@handler("CreatePartitions")
async def handle(ctx, request):
    names = [t["name"] for t in request["topics"]]
    results = []
    for topic in request["topics"]:
        result = {"name": topic["name"], "error_code": 0, "error_message": None}
        results.append(result)
        try:
            check(ctx, topic, names)
            if not request["validate_only"]:
                await ctx.metadata.create_partitions(topic["name"], topic["count"])
                log.info("topic %s now has %d partitions (client %r at %s)", topic["name"], topic["count"],
                         ctx.client_id, ctx.peer)
        except Rejected as e:
            result["error_code"], result["error_message"] = e.code, e.message
        except (LogError, OSError) as e:
            result["error_code"], result["error_message"] = error_code_for(e), str(e)
    return {"throttle_time_ms": 0, "results": results}
