"""EndTxn (key 26): versions 0-4. Commit or abort: the coordinator records PrepareCommit/PrepareAbort, writes
the markers to every partition of the transaction, records CompleteCommit/CompleteAbort, then answers."""

from __future__ import annotations

from kafkalite.broker.handlers.txn_common import coordinator_error, for_version
from kafkalite.broker.registry import handler
from kafkalite.protocol.errors import ErrorCode


@handler("EndTxn")
async def handle(ctx, request):
    code = coordinator_error(ctx, request["transactional_id"])
    if code == ErrorCode.NONE:
        code = await ctx.transactions.end_txn(request["transactional_id"], request["producer_id"],
                                              request["producer_epoch"], request["committed"])
    return {"throttle_time_ms": 0, "error_code": for_version(ctx, "EndTxn", code)}
