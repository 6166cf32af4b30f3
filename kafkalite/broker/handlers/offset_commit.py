"""OffsetCommit (key 8): versions 2-8. Commits are durable in __consumer_offsets before the reply.

Generation -1 with an empty member id commits for a consumer that uses assign() (no group
management); it is accepted while the group has no members. retention_time_ms (v2-4) is ignored:
offsets.retention.minutes applies, as in Kafka 2.1+ for empty groups. Offsets for a topic or partition
that does not exist get UNKNOWN_TOPIC_OR_PARTITION, as in Kafka.
"""

from __future__ import annotations

from kafkalite.broker.registry import handler
from kafkalite.group import OffsetCommitRequest
from kafkalite.protocol.errors import ErrorCode


@handler("OffsetCommit")
async def handle(ctx, request):
    image = ctx.metadata.image
    groups = ctx.groups
    offsets = []
    errors = {}
    for t in request["topics"]:
        for p in t["partitions"]:
            if image.partition(t["name"], p["partition_index"]) is None:  # as Kafka: only existing partitions
                errors[(t["name"], p["partition_index"])] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            else:
                offsets.append((t["name"], p["partition_index"], p["committed_offset"],
                                p.get("committed_leader_epoch", -1), p.get("committed_metadata")))
    if offsets and (code := groups.coordinator_error(request["group_id"])):
        errors.update({(t, p): code for t, p, *_ in offsets})
    elif offsets:
        errors |= await groups.offset_commit(OffsetCommitRequest(
            group_id=request["group_id"],
            generation_id=request.get("generation_id_or_member_epoch", -1),
            member_id=request.get("member_id", ""),
            offsets=offsets,
            group_instance_id=request.get("group_instance_id") if ctx.api_version >= 7 else None,
        ))
    return {
        "throttle_time_ms": 0,
        "topics": [
            {"name": t["name"],
             "partitions": [{"partition_index": p["partition_index"],
                             "error_code": errors[(t["name"], p["partition_index"])]} for p in t["partitions"]]}
            for t in request["topics"]
        ],
    }
