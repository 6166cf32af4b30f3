"""TxnOffsetCommit (key 28): versions 0-4. Offsets a transactional producer commits for a group inside its
transaction (sendOffsetsToTransaction): the producer must be the transactional id's current one and
AddOffsetsToTxn must have put the group's __consumer_offsets partition in its transaction. The group checks
generation and member as for OffsetCommit (v3+; before, as a commit without group management). The offsets
are written as the producer's transactional batch and become visible only when the transaction commits."""

from __future__ import annotations

from kafkalite.broker.handlers.txn_common import coordinator_error, for_version
from kafkalite.broker.registry import handler
from kafkalite.group import OFFSETS_TOPIC, OffsetCommitRequest
from kafkalite.protocol.errors import ErrorCode


@handler("TxnOffsetCommit")
async def handle(ctx, request):
    image = ctx.metadata.image
    group_id = request["group_id"]
    offsets, errors = [], {}
    for t in request["topics"]:
        for p in t["partitions"]:
            if image.partition(t["name"], p["partition_index"]) is None:
                errors[(t["name"], p["partition_index"])] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            else:
                offsets.append((t["name"], p["partition_index"], p["committed_offset"],
                                p.get("committed_leader_epoch", -1), p.get("committed_metadata")))
    if offsets:
        code = coordinator_error(ctx, request["transactional_id"])
        if code == ErrorCode.NONE:
            code = ctx.groups.coordinator_error(group_id)
        if code == ErrorCode.NONE:
            code = ctx.transactions.check_offset_commit(
                request["transactional_id"], request["producer_id"], request["producer_epoch"],
                (OFFSETS_TOPIC, ctx.groups.partition_for(group_id)))
        if code != ErrorCode.NONE:
            code = for_version(ctx, "TxnOffsetCommit", code)
            errors.update({(t, p): code for t, p, *_ in offsets})
        else:
            errors |= await ctx.groups.txn_offset_commit(OffsetCommitRequest(
                group_id=group_id, generation_id=request.get("generation_id", -1),
                member_id=request.get("member_id", ""), offsets=offsets,
                group_instance_id=request.get("group_instance_id")), request["producer_id"], request["producer_epoch"])
    return {"throttle_time_ms": 0, "topics": [
        {"name": t["name"], "partitions": [
            {"partition_index": p["partition_index"], "error_code": errors[(t["name"], p["partition_index"])]}
            for p in t["partitions"]]}
        for t in request["topics"]]}
