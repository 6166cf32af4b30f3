"""ListOffsets, which the consumer (reset, seek, offsets for times, lag) and the admin client (lag, reset
group offsets) share: asks each partition's leader, retrying after a metadata refresh when leadership moved."""

from __future__ import annotations

import asyncio

from kafkalite.protocol.api_keys import ApiKey
from kafkalite.protocol.errors import ErrorCode

from kafkalite_client.cluster import Cluster
from kafkalite_client.errors import KafkaConnectionError, KafkaError, raise_for_code
from kafkalite_client.records import TopicPartition

LIST_OFFSETS = ApiKey.LIST_OFFSETS
EARLIEST, LATEST, MAX_TIMESTAMP = -2, -1, -3
READ_UNCOMMITTED, READ_COMMITTED = 0, 1  # isolation levels, as Fetch and ListOffsets take them
ISOLATION_LEVELS = {"read_uncommitted": READ_UNCOMMITTED, "read_committed": READ_COMMITTED}
_RETRY = {ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.LEADER_NOT_AVAILABLE,
          ErrorCode.OFFSET_NOT_AVAILABLE, ErrorCode.FENCED_LEADER_EPOCH, ErrorCode.UNKNOWN_LEADER_EPOCH}


async def list_offsets(cluster: Cluster, timestamps: dict[TopicPartition, int], *, attempts: int = 5,
                       isolation_level: int = READ_UNCOMMITTED) -> dict[TopicPartition, tuple[int, int] | None]:
    """For each partition, (offset, timestamp) of the first record at or after the timestamp (or EARLIEST,
    LATEST); None when no record is that late. With READ_COMMITTED, LATEST is the last stable offset (the
    first offset of the oldest open transaction, or the high watermark) and later records are not found."""
    result: dict[TopicPartition, tuple[int, int] | None] = {}
    todo = dict(timestamps)
    for attempt in range(attempts):
        for topic in {tp.topic for tp in todo}:
            if topic not in cluster.topics:
                await cluster.topic(topic)
        by_leader: dict[int, dict[TopicPartition, int]] = {}
        for tp, ts in todo.items():
            by_leader.setdefault(cluster.leader(tp.topic, tp.partition), {})[tp] = ts
        retry: dict[TopicPartition, int] = {}
        last_error: Exception | None = None
        for leader, part in by_leader.items():
            if leader < 0:
                retry.update(part)
                continue
            topics: dict[str, list[dict]] = {}
            for tp, ts in part.items():
                topics.setdefault(tp.topic, []).append({"partition_index": tp.partition, "timestamp": ts})
            try:
                response = await cluster.request(leader, LIST_OFFSETS, {
                    "replica_id": -1, "isolation_level": isolation_level,
                    "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()]})
            except KafkaConnectionError as e:
                last_error = e
                retry.update(part)
                continue
            for t in response["topics"]:
                for p in t["partitions"]:
                    tp = TopicPartition(t["name"], p["partition_index"])
                    code = p["error_code"]
                    if code in _RETRY and attempt < attempts - 1:
                        retry[tp] = part[tp]
                        continue
                    raise_for_code(code, f"listing offsets of {tp.topic}-{tp.partition}")
                    result[tp] = None if p["offset"] < 0 else (p["offset"], p["timestamp"])
        if not retry:
            return result
        todo = retry
        await cluster.refresh()
        await asyncio.sleep(0.1 * (attempt + 1))
    if last_error is not None:
        raise last_error
    raise KafkaError("listing offsets kept failing")
