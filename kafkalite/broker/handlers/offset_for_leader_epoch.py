"""OffsetForLeaderEpoch (key 23): versions 2-4. Where a leader epoch ends, from the leader's epoch checkpoint.

Clients (librdkafka, kafka-python) validate their positions with it after a leader change, and followers use it
to find where their log diverges from the leader's. The latest epoch ends at the log end; an older one ends where
the next higher epoch starts, answered with the largest epoch not above the one asked.
"""

from __future__ import annotations

from kafkalite.broker.registry import handler
from kafkalite.protocol.errors import ErrorCode
from kafkalite.replication.replica_manager import NotServed

NO_EPOCH, UNDEFINED_OFFSET = -1, -1


def check_current_epoch(current_leader_epoch: int, leader_epoch: int) -> int:
    """Kafka's fencing: a caller behind the leader's epoch is fenced, one ahead of it knows an unknown epoch."""
    if current_leader_epoch == NO_EPOCH:
        return ErrorCode.NONE
    if current_leader_epoch < leader_epoch:
        return ErrorCode.FENCED_LEADER_EPOCH
    if current_leader_epoch > leader_epoch:
        return ErrorCode.UNKNOWN_LEADER_EPOCH
    return ErrorCode.NONE


@handler("OffsetForLeaderEpoch")
async def handle(ctx, request):
    replicas = ctx.replicas
    topics = []
    for topic in request["topics"]:
        partitions = []
        topics.append({"topic": topic["topic"], "partitions": partitions})
        for part in topic["partitions"]:
            resp = {"error_code": 0, "partition": part["partition"], "leader_epoch": NO_EPOCH,
                    "end_offset": UNDEFINED_OFFSET}
            partitions.append(resp)
            try:
                replica = replicas.leader(topic["topic"], part["partition"])
            except NotServed as e:
                resp["error_code"] = e.code
                continue
            resp["error_code"] = check_current_epoch(part["current_leader_epoch"], replica.leader_epoch)
            if resp["error_code"] != ErrorCode.NONE:
                continue
            if part["leader_epoch"] == replica.leader_epoch:  # the current epoch ends at the log end, appended
                resp["leader_epoch"], resp["end_offset"] = replica.leader_epoch, replica.log.log_end_offset  # to or not
            else:
                resp["leader_epoch"], resp["end_offset"] = replica.log.epoch_end_offset(part["leader_epoch"])
    return {"throttle_time_ms": 0, "topics": topics}
