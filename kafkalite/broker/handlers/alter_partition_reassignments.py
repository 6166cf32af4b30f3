"""AlterPartitionReassignments (key 45): version 0 (KIP-455). Moves partitions to new replicas, or cancels a
move (null replicas), as kafka-reassign-partitions and Admin.alterPartitionReassignments do. The new replicas
copy the partition; once they are in sync the controller drops the old ones."""

from __future__ import annotations

from kafkalite.broker.registry import handler
from kafkalite.protocol.errors import ErrorCode


@handler("AlterPartitionReassignments")
async def handle(ctx, request):
    responses = []
    for topic in request["topics"]:
        partitions = []
        for part in topic["partitions"]:
            code = await ctx.metadata.reassign(topic["name"], part["partition_index"], part["replicas"])
            partitions.append({"partition_index": part["partition_index"], "error_code": code,
                               "error_message": None if code == ErrorCode.NONE else ErrorCode(code).name})
        responses.append({"name": topic["name"], "partitions": partitions})
    return {"throttle_time_ms": 0, "error_code": 0, "error_message": None, "responses": responses}
