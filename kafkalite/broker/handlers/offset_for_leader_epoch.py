"""OffsetForLeaderEpoch (key 23): versions 2-4. One broker, one leader epoch (0) for every partition, forever."""

from __future__ import annotations

from kafkalite.broker.registry import handler
from kafkalite.protocol.errors import ErrorCode

LEADER_EPOCH = 0  # the epoch Metadata, ListOffsets and stored batches all carry (PROTOCOL_TARGET trap 11)
NO_EPOCH, UNDEFINED_OFFSET = -1, -1


def check_current_epoch(current_leader_epoch: int) -> int:
    """Kafka's fencing: a client behind the leader's epoch is fenced, one ahead of it knows an unknown epoch."""
    if current_leader_epoch == NO_EPOCH:
        return ErrorCode.NONE
    if current_leader_epoch < LEADER_EPOCH:
        return ErrorCode.FENCED_LEADER_EPOCH
    if current_leader_epoch > LEADER_EPOCH:
        return ErrorCode.UNKNOWN_LEADER_EPOCH
    return ErrorCode.NONE


def end_offset_for(plog, requested_epoch: int) -> tuple[int, int]:
    """(epoch, end offset) as Kafka's leader epoch cache answers when its only entry is epoch 0."""
    if requested_epoch == LEADER_EPOCH:  # the latest epoch ends at the log end
        return LEADER_EPOCH, plog.log_end_offset
    return NO_EPOCH, UNDEFINED_OFFSET  # undefined, or newer than any epoch this log has seen


@handler("OffsetForLeaderEpoch")
async def handle(ctx, request):
    broker = ctx.broker
    topics = []
    for topic in request["topics"]:
        partitions = []
        topics.append({"topic": topic["topic"], "partitions": partitions})
        for part in topic["partitions"]:
            resp = {"error_code": 0, "partition": part["partition"], "leader_epoch": NO_EPOCH,
                    "end_offset": UNDEFINED_OFFSET}
            partitions.append(resp)
            plog = broker.partition_log(topic["topic"], part["partition"])
            if plog is None:
                resp["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                continue
            resp["error_code"] = check_current_epoch(part["current_leader_epoch"])
            if resp["error_code"] == ErrorCode.NONE:
                resp["leader_epoch"], resp["end_offset"] = end_offset_for(plog, part["leader_epoch"])
    return {"throttle_time_ms": 0, "topics": topics}
