"""AddPartitionsToTxn (key 24): versions 0-5.

Versions 0-3 are the client's form: one transaction. A partition that does not exist is
UNKNOWN_TOPIC_OR_PARTITION, one of an internal topic TOPIC_AUTHORIZATION_FAILED, and then the others
OPERATION_NOT_ATTEMPTED; otherwise every partition gets the coordinator's answer, as in Kafka.

Versions 4-5 are the batched form a partition leader sends the coordinator (KIP-890): several transactions,
each answered on its own like the client's form. A VerifyOnly transaction adds nothing: each partition is NONE
when it is already in the producer's ongoing transaction, else TRANSACTION_ABORTABLE. Kafka refuses these
versions with CLUSTER_AUTHORIZATION_FAILED only when its authorizer denies the caller CLUSTER_ACTION; without an
authorizer (kafkalite has none) Kafka serves them to anyone, clients included, and so does kafkalite.
"""

from __future__ import annotations

from kafkalite.broker.handlers.txn_common import coordinator_error, for_version
from kafkalite.broker.registry import handler
from kafkalite.group import OFFSETS_TOPIC
from kafkalite.protocol.errors import ErrorCode
from kafkalite.txn import TRANSACTION_STATE_TOPIC

BATCHED_SINCE = 4


@handler("AddPartitionsToTxn")
async def handle(ctx, request):
    if ctx.api_version < BATCHED_SINCE:
        codes = await _one_transaction(ctx, request, verify_only=False)
        return {"throttle_time_ms": 0, "results_by_topic": _topic_results(request["topics"], codes)}
    results = []
    for txn in request["transactions"]:
        codes = await _one_transaction(ctx, txn, verify_only=txn["verify_only"])
        results.append({"transactional_id": txn["transactional_id"],
                        "topic_results": _topic_results(txn["topics"], codes)})
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "results_by_transaction": results}


async def _one_transaction(ctx, txn: dict, verify_only: bool) -> dict[tuple[str, int], int]:
    """Each partition's error code for one transaction of the request."""
    image = ctx.metadata.image
    wanted = [(t["name"], p) for t in txn["topics"] for p in t["partitions"]]
    # a client may not write to internal topics (Kafka never authorizes it to); a broker's request may name them
    internal = (OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC) if ctx.api_version < BATCHED_SINCE else ()
    refused = {tp: ErrorCode.TOPIC_AUTHORIZATION_FAILED if tp[0] in internal else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
               for tp in wanted if tp[0] in internal or image.partition(*tp) is None}
    if refused:
        return {tp: refused.get(tp, ErrorCode.OPERATION_NOT_ATTEMPTED) for tp in wanted}
    transactional_id = txn["transactional_id"]
    if verify_only and not transactional_id:
        return dict.fromkeys(wanted, ErrorCode.INVALID_REQUEST)
    code = coordinator_error(ctx, transactional_id)
    if code != ErrorCode.NONE:
        return dict.fromkeys(wanted, code)
    if verify_only:
        return ctx.transactions.verify_partitions(transactional_id, txn["producer_id"], txn["producer_epoch"],
                                                  set(wanted))
    code = await ctx.transactions.add_partitions(transactional_id, txn["producer_id"], txn["producer_epoch"],
                                                 set(wanted))
    return dict.fromkeys(wanted, for_version(ctx, "AddPartitionsToTxn", code))


def _topic_results(topics: list[dict], codes: dict[tuple[str, int], int]) -> list[dict]:
    return [{"name": t["name"], "results_by_partition": [
        {"partition_index": p, "partition_error_code": int(codes[(t["name"], p)])} for p in t["partitions"]]}
        for t in topics]
