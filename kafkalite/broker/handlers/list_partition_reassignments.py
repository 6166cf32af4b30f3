"""ListPartitionReassignments (key 46): version 0 (KIP-455). The moves in progress: every one, or those of the
partitions asked for."""

from __future__ import annotations

from kafkalite.broker.registry import handler


@handler("ListPartitionReassignments")
async def handle(ctx, request):
    wanted = request["topics"]
    asked = None if wanted is None else {(t["name"], i) for t in wanted for i in t["partition_indexes"]}
    topics: dict[str, list] = {}
    for name, index, p in ctx.metadata.reassignments():
        if asked is None or (name, index) in asked:
            topics.setdefault(name, []).append({
                "partition_index": index, "replicas": list(p.replicas), "adding_replicas": list(p.adding),
                "removing_replicas": list(p.removing)})
    return {"throttle_time_ms": 0, "error_code": 0, "error_message": None,
            "topics": [{"name": n, "partitions": ps} for n, ps in topics.items()]}
