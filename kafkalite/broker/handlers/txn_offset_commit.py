"""TxnOffsetCommit (key 28): versions 0-4. Offsets a transactional producer commits for a group inside its
transaction (sendOffsetsToTransaction), sent to the group's coordinator. Where that broker is the transactional
id's coordinator too, the producer must be the id's current one and AddOffsetsToTxn must have put the group's
__consumer_offsets partition in its transaction (a group coordinator on another broker cannot check this, as in
Kafka before KIP-890). The group checks generation and member as for OffsetCommit (v3+; before, as a commit
without group management). The offsets are written as the producer's transactional batch and become visible only
when the transaction commits."""

from __future__ import annotations

from kafkalite.broker.handlers.txn_common import coordinator_error, for_version
from kafkalite.broker.registry import handler
from kafkalite.group import OFFSETS_TOPIC, OffsetCommitRequest
from kafkalite.protocol.errors import ErrorCode

# A group not in the transaction is INVALID_TXN_STATE; v4+ clients know TRANSACTION_ABORTABLE (KIP-890), which
# Kafka answers them instead.
TRANSACTION_ABORTABLE_SINCE = 4


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
    if offsets and not group_id:  # Kafka checks the group id before the producer
        errors.update({(t, p): ErrorCode.INVALID_GROUP_ID for t, p, *_ in offsets})
        offsets = []
    if offsets:
        code = ctx.groups.coordinator_error(group_id)
        # The producer sends this to the group's coordinator. Where the transaction's coordinator is this broker too,
        # it checks the producer and the transaction; elsewhere (cluster mode) it cannot, as Kafka before KIP-890.
        txn_code = coordinator_error(ctx, request["transactional_id"])
        if code == ErrorCode.NONE and txn_code != ErrorCode.NOT_COORDINATOR:
            code = txn_code
        if code == ErrorCode.NONE and txn_code == ErrorCode.NONE:
            code = ctx.transactions.check_offset_commit(
                request["transactional_id"], request["producer_id"], request["producer_epoch"],
                (OFFSETS_TOPIC, ctx.groups.partition_for(group_id)))
            if code == ErrorCode.INVALID_TXN_STATE and ctx.api_version >= TRANSACTION_ABORTABLE_SINCE:
                code = ErrorCode.TRANSACTION_ABORTABLE
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
