"""Metadata (key 3): versions 1-12."""

from kafkalite.broker.broker import OFFSETS_TOPIC
from kafkalite.broker.errors import error_code_for
from kafkalite.broker.registry import handler
from kafkalite.log.errors import LogError
from kafkalite.log.manager import validate_topic_name
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.primitives import ZERO_UUID


def topic_metadata(broker, name: str) -> dict:
    info = broker.logs.topic(name)
    node = broker.node_id
    partitions = [
        {
            "error_code": 0, "partition_index": index, "leader_id": node, "leader_epoch": 0,
            "replica_nodes": [node], "isr_nodes": [node], "offline_replicas": [],
        }
        for index in range(info.partitions)
    ]
    return {
        "error_code": 0, "name": name, "topic_id": info.id, "is_internal": name == OFFSETS_TOPIC,
        "partitions": partitions,
    }


@handler("Metadata")
async def handle(ctx, request):
    broker = ctx.broker
    requested = request["topics"]
    topics = []
    if requested is None:  # null: every topic
        names = sorted(broker.logs.topics())
        topics = [topic_metadata(broker, name) for name in names]
    else:
        by_id = {broker.logs.topic(n).id: n for n in broker.logs.topics()} if any(
            t["topic_id"] != ZERO_UUID for t in requested) else {}
        for entry in requested:
            name = entry["name"]
            if name is None:
                name = by_id.get(entry["topic_id"])
                if name is None:
                    topics.append({"error_code": ErrorCode.UNKNOWN_TOPIC_ID, "name": None,
                                   "topic_id": entry["topic_id"]})
                    continue
            try:
                validate_topic_name(name)  # as Kafka: an invalid name is INVALID_TOPIC_EXCEPTION, not unknown
                # Before v4 there is no such field; it decodes as True, the old behaviour.
                exists = name in broker.logs.topics() or (
                    request["allow_auto_topic_creation"] and broker.ensure_topic(name))
            except LogError as e:
                topics.append({"error_code": error_code_for(e), "name": name})
                continue
            if exists:
                topics.append(topic_metadata(broker, name))
            else:
                topics.append({"error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "name": name})
    return {
        "throttle_time_ms": 0,
        "brokers": [{"node_id": broker.node_id, "host": broker.config.host, "port": broker.config.port, "rack": None}],
        "cluster_id": broker.cluster_id,
        "controller_id": broker.node_id,
        "topics": topics,
    }
