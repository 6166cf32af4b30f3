"""OffsetDelete (key 47): version 0. Refused per partition while a consumer group in use subscribes to the topic;
a partition that does not exist is UNKNOWN_TOPIC_OR_PARTITION, as from Kafka."""

from __future__ import annotations

from kafkalite.broker.registry import handler
from kafkalite.protocol.errors import ErrorCode


@handler("OffsetDelete")
async def handle(ctx, request):
    groups = ctx.groups
    if code := groups.coordinator_error(request["group_id"]):
        return {"error_code": code, "throttle_time_ms": 0, "topics": []}
    image = ctx.metadata.image
    asked = [(t["name"], p["partition_index"]) for t in request["topics"] for p in t["partitions"]]
    wanted = [key for key in asked if image.partition(*key) is not None]
    code, results = await groups.offset_delete(request["group_id"], wanted)
    if code:
        return {"error_code": code, "throttle_time_ms": 0, "topics": []}
    return {
        "error_code": ErrorCode.NONE,
        "throttle_time_ms": 0,
        "topics": [
            {"name": t["name"],
             "partitions": [{"partition_index": p["partition_index"],
                             "error_code": results.get((t["name"], p["partition_index"]),
                                                       ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)}
                            for p in t["partitions"]]}
            for t in request["topics"]
        ],
    }
