"""OffsetDelete (key 47): version 0. Refused per partition while a consumer group in use subscribes to the topic."""

from __future__ import annotations

from kafkalite.broker.registry import handler
from kafkalite.protocol.errors import ErrorCode


@handler("OffsetDelete")
async def handle(ctx, request):
    groups = ctx.groups
    if code := groups.coordinator_error(request["group_id"]):
        return {"error_code": code, "throttle_time_ms": 0, "topics": []}
    wanted = [(t["name"], p["partition_index"]) for t in request["topics"] for p in t["partitions"]]
    code, results = await groups.offset_delete(request["group_id"], wanted)
    if code:
        return {"error_code": code, "throttle_time_ms": 0, "topics": []}
    return {
        "error_code": ErrorCode.NONE,
        "throttle_time_ms": 0,
        "topics": [
            {"name": t["name"],
             "partitions": [{"partition_index": p["partition_index"],
                             "error_code": results[(t["name"], p["partition_index"])]}
                            for p in t["partitions"]]}
            for t in request["topics"]
        ],
    }
