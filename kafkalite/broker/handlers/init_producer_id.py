"""InitProducerId (key 22): versions 0-4.

Idempotent producer (transactional_id null): always a new producer id with epoch 0, as Kafka's coordinator
does, also when a v3+ request names its current producer_id/epoch (KIP-360: the client asks after an error;
Kafka "blindly accepts" and hands out a fresh id, so the client restarts its sequences cleanly).

Transactional producer: the transaction coordinator (broker/transactions.py) gives the transactional id's
producer id with its epoch bumped, which fences older instances; an open transaction is aborted first
(CONCURRENT_TRANSACTIONS: the client retries). transaction_timeout_ms above transaction.max.timeout.ms is
INVALID_TRANSACTION_TIMEOUT. An empty transactional id is INVALID_REQUEST, as in Kafka.
"""

from __future__ import annotations

import logging

from kafkalite.broker.errors import Rejected
from kafkalite.broker.handlers.txn_common import for_version
from kafkalite.broker.registry import handler
from kafkalite.protocol.errors import ErrorCode

log = logging.getLogger("kafkalite.broker")

NO_PRODUCER_ID, NO_PRODUCER_EPOCH = -1, -1


def check(ctx, request: dict) -> None:
    transactional_id = request["transactional_id"]
    if transactional_id == "":
        raise Rejected(ErrorCode.INVALID_REQUEST)
    # v3+: producer_id and producer_epoch are given together or not at all (v0-2 decode both as -1).
    if (request["producer_id"] == NO_PRODUCER_ID) != (request["producer_epoch"] == NO_PRODUCER_EPOCH):
        raise Rejected(ErrorCode.INVALID_REQUEST)


@handler("InitProducerId")
async def handle(ctx, request):
    try:
        check(ctx, request)
        if request["transactional_id"] is not None:
            return await _transactional(ctx, request)
        producer_id = await ctx.producer_ids.allocate()
    except Rejected as e:
        return {"throttle_time_ms": 0, "error_code": e.code, "producer_id": NO_PRODUCER_ID,
                "producer_epoch": NO_PRODUCER_EPOCH}
    except OSError:  # the block of ids could not be reserved on disk
        return {"throttle_time_ms": 0, "error_code": ErrorCode.KAFKA_STORAGE_ERROR, "producer_id": NO_PRODUCER_ID,
                "producer_epoch": NO_PRODUCER_EPOCH}
    return {"throttle_time_ms": 0, "error_code": 0, "producer_id": producer_id, "producer_epoch": 0}


async def _transactional(ctx, request) -> dict:
    transactional_id = request["transactional_id"]
    code = ctx.transactions.coordinator_error(transactional_id)
    producer_id, epoch = NO_PRODUCER_ID, NO_PRODUCER_EPOCH
    if code == 0:
        code, producer_id, epoch = await ctx.transactions.init_producer_id(
            transactional_id, request["transaction_timeout_ms"], request["producer_id"], request["producer_epoch"])
    if code != 0:
        producer_id, epoch = NO_PRODUCER_ID, NO_PRODUCER_EPOCH
    return {"throttle_time_ms": 0, "error_code": for_version(ctx, "InitProducerId", code), "producer_id": producer_id,
            "producer_epoch": epoch}
