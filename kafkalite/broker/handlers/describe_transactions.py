"""DescribeTransactions (key 65): version 0. Each transactional id's state as its coordinator holds it
(kafka-transactions.sh describe): the state under Kafka's name, timeout, start time (-1 before the first
transaction), producer id and epoch, and the partitions of the transaction. An unknown id is
TRANSACTIONAL_ID_NOT_FOUND, an empty one INVALID_REQUEST, as in Kafka."""

from __future__ import annotations

from kafkalite.broker.handlers.txn_common import coordinator_error
from kafkalite.broker.registry import handler
from kafkalite.protocol.errors import ErrorCode


@handler("DescribeTransactions")
async def handle(ctx, request):
    return {"throttle_time_ms": 0,
            "transaction_states": [_describe(ctx, tid) for tid in request["transactional_ids"]]}


def _describe(ctx, transactional_id: str) -> dict:
    code = coordinator_error(ctx, transactional_id) if transactional_id else ErrorCode.INVALID_REQUEST
    meta = ctx.transactions.describe(transactional_id) if code == ErrorCode.NONE else None
    if meta is None:
        return {"error_code": int(code) or ErrorCode.TRANSACTIONAL_ID_NOT_FOUND, "transactional_id": transactional_id}
    partitions: dict[str, list[int]] = {}
    for topic, index in sorted(meta.partitions):
        partitions.setdefault(topic, []).append(index)
    return {"error_code": ErrorCode.NONE, "transactional_id": transactional_id,
            "transaction_state": meta.state.kafka_name, "transaction_timeout_ms": meta.timeout_ms,
            "transaction_start_time_ms": meta.start_ms, "producer_id": meta.producer_id,
            "producer_epoch": meta.producer_epoch,
            "topics": [{"topic": topic, "partitions": indexes} for topic, indexes in partitions.items()]}
