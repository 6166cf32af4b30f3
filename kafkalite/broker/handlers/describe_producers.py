"""DescribeProducers (key 61): version 0. The active idempotent and transactional producers of each partition this
broker holds a replica of (kafka-transactions.sh describe-producers), from the partition's producer state: id,
epoch, last sequence, when its last batch was appended, and the first offset of its open transaction (-1 when
none), and the coordinator epoch of its last marker (-1 before one). A topic that does not exist is
UNKNOWN_TOPIC_OR_PARTITION with Kafka's message, a partition of it that does not exist the same code without one, a
partition held elsewhere NOT_LEADER_OR_FOLLOWER, as in Kafka."""

from __future__ import annotations

from kafkalite.broker.registry import handler
from kafkalite.protocol.errors import ErrorCode

UNKNOWN_TOPIC_MESSAGE = "This server does not host this topic-partition."  # Kafka's exception message


@handler("DescribeProducers")
async def handle(ctx, request):
    image = ctx.metadata.image
    topics = []
    for t in request["topics"]:
        known = t["name"] in image.topics
        topics.append({"name": t["name"], "partitions": [
            _partition(ctx, t["name"], index) if known else
            {"partition_index": index, "error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
             "error_message": UNKNOWN_TOPIC_MESSAGE}
            for index in t["partition_indexes"]]})
    return {"throttle_time_ms": 0, "topics": topics}


def _partition(ctx, topic: str, index: int) -> dict:
    replica = ctx.replicas.replica(topic, index)
    if replica is None or replica.log.closed:
        exists = ctx.metadata.image.partition(topic, index) is not None
        code = ErrorCode.NOT_LEADER_OR_FOLLOWER if exists else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return {"partition_index": index, "error_code": code}
    return {"partition_index": index, "error_code": ErrorCode.NONE, "active_producers": [
        {"producer_id": p.producer_id, "producer_epoch": p.epoch, "last_sequence": p.last_sequence,
         "last_timestamp": p.last_timestamp, "coordinator_epoch": p.coordinator_epoch,
         "current_txn_start_offset": p.txn_first_offset}
        for p in replica.log.active_producers()]}
