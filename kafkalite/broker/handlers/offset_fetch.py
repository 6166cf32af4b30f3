"""OffsetFetch (key 9): versions 1-8 (v2+ null topics = every committed partition; v8 batches groups).

A partition without a commit answers offset -1 and no error, as Kafka does. With require_stable (v7+, KIP-447:
read_committed consumers) a partition that a TxnOffsetCommit of an open transaction covers answers
UNSTABLE_OFFSET_COMMIT, which the client retries until the transaction ends.
"""

from __future__ import annotations

from kafkalite.broker.registry import handler
from kafkalite.protocol.errors import ErrorCode


def _fetch(groups, group_id: str, topics: list[dict] | None, require_stable: bool = False) -> tuple[int, list[dict]]:
    """(group error, topics) in the response's shape."""
    code = groups.coordinator_error(group_id) if groups.loaded else ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    if code != ErrorCode.NONE:
        wanted = [(t["name"], p) for t in topics or () for p in t["partition_indexes"]]
        rows = [(t, p, None, code) for t, p in wanted]
    else:
        wanted = None if topics is None else [(t["name"], p) for t in topics for p in t["partition_indexes"]]
        rows = [(t, p, c, ErrorCode.NONE) for t, p, c in groups.offset_fetch(group_id, wanted)]
        if require_stable:
            unstable = groups.pending_transactional_offsets(group_id)
            rows = [(t, p, None, ErrorCode.UNSTABLE_OFFSET_COMMIT) if (t, p) in unstable else (t, p, c, e)
                    for t, p, c, e in rows]
    by_topic: dict[str, list[dict]] = {}
    for topic, partition, committed, error in rows:
        by_topic.setdefault(topic, []).append({
            "partition_index": partition,
            "committed_offset": committed.offset if committed else -1,
            "committed_leader_epoch": committed.leader_epoch if committed else -1,
            "metadata": committed.metadata if committed else "",
            "error_code": error,
        })
    return code, [{"name": name, "partitions": partitions} for name, partitions in by_topic.items()]


@handler("OffsetFetch")
async def handle(ctx, request):
    groups = ctx.groups
    if ctx.api_version >= 8:
        results = []
        for g in request["groups"]:
            code, topics = _fetch(groups, g["group_id"], g["topics"], request["require_stable"])
            results.append({"group_id": g["group_id"], "topics": topics, "error_code": code})
        return {"throttle_time_ms": 0, "groups": results}
    code, topics = _fetch(groups, request["group_id"], request["topics"], request.get("require_stable", False))
    return {"throttle_time_ms": 0, "topics": topics, "error_code": code}
