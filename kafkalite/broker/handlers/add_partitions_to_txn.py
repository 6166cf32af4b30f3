"""AddPartitionsToTxn (key 24): versions 0-3, the client's form. A partition that does not exist is
UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED; otherwise every partition gets the
coordinator's answer, as in Kafka."""

from __future__ import annotations

from kafkalite.broker.handlers.txn_common import coordinator_error, for_version
from kafkalite.broker.registry import handler
from kafkalite.group import OFFSETS_TOPIC
from kafkalite.protocol.errors import ErrorCode
from kafkalite.txn import TRANSACTION_STATE_TOPIC


@handler("AddPartitionsToTxn")
async def handle(ctx, request):
    image = ctx.metadata.image
    wanted = [(t["name"], p) for t in request["topics"] for p in t["partitions"]]
    unknown = {tp for tp in wanted if image.partition(*tp) is None or tp[0] in (OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC)}
    if unknown:
        codes = {tp: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if tp in unknown else ErrorCode.OPERATION_NOT_ATTEMPTED
                 for tp in wanted}
    else:
        code = coordinator_error(ctx, request["transactional_id"])
        if code == ErrorCode.NONE:
            code = await ctx.transactions.add_partitions(request["transactional_id"], request["producer_id"],
                                                         request["producer_epoch"], set(wanted))
        code = for_version(ctx, "AddPartitionsToTxn", code)
        codes = {tp: code for tp in wanted}
    return {"throttle_time_ms": 0, "results_by_topic": [
        {"name": t["name"], "results_by_partition": [
            {"partition_index": p, "partition_error_code": codes[(t["name"], p)]} for p in t["partitions"]]}
        for t in request["topics"]]}
