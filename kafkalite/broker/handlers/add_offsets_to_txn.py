"""AddOffsetsToTxn (key 25): versions 0-4. The group's __consumer_offsets partition joins the transaction, so
its TxnOffsetCommits are committed or aborted with it."""

from __future__ import annotations

from kafkalite.broker.handlers.txn_common import coordinator_error, for_version
from kafkalite.broker.registry import handler
from kafkalite.group import OFFSETS_TOPIC
from kafkalite.protocol.errors import ErrorCode


@handler("AddOffsetsToTxn")
async def handle(ctx, request):
    code = coordinator_error(ctx, request["transactional_id"])
    if code == ErrorCode.NONE:
        partition = (OFFSETS_TOPIC, ctx.groups.partition_for(request["group_id"]))
        code = await ctx.transactions.add_partitions(request["transactional_id"], request["producer_id"],
                                                     request["producer_epoch"], {partition})
    return {"throttle_time_ms": 0, "error_code": for_version(ctx, "AddOffsetsToTxn", code)}
