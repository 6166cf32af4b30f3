"""What the transaction handlers share: the coordinator check, and PRODUCER_FENCED for older versions."""

from __future__ import annotations

from kafkalite.protocol.errors import ErrorCode

# The first version of each API whose clients know PRODUCER_FENCED; older ones get INVALID_PRODUCER_EPOCH, as Kafka.
# TxnOffsetCommit: Kafka checks the producer by verifying the group's partition with its transaction coordinator,
# which answers INVALID_PRODUCER_EPOCH for a wrong epoch at every version kafkalite serves (0-4).
PRODUCER_FENCED_SINCE = {"InitProducerId": 4, "AddPartitionsToTxn": 2, "AddOffsetsToTxn": 2, "EndTxn": 2,
                         "TxnOffsetCommit": 5}


def for_version(ctx, api: str, code: int) -> int:
    if code == ErrorCode.PRODUCER_FENCED and ctx.api_version < PRODUCER_FENCED_SINCE[api]:
        return ErrorCode.INVALID_PRODUCER_EPOCH
    return int(code)


def coordinator_error(ctx, transactional_id: str) -> int:
    """NONE when this broker coordinates the transactional id."""
    return ctx.transactions.coordinator_error(transactional_id)
