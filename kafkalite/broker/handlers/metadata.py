"""Metadata (key 3): versions 1-12. Brokers, controller, topics, and every partition's leader, epoch,
replicas and ISR, all from the metadata image."""

from kafkalite.broker.errors import error_code_for
from kafkalite.broker.registry import handler
from kafkalite.log.errors import InvalidTopicName, LogError
from kafkalite.log.manager import validate_topic_name
from kafkalite.metadata.image import MetadataImage, TopicImage
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.primitives import ZERO_UUID


def topic_metadata(image: MetadataImage, topic: TopicImage) -> dict:
    partitions = []
    for index, info in enumerate(topic.partitions):
        leader_known = info.leader in image.brokers
        partitions.append({
            "error_code": 0 if leader_known else ErrorCode.LEADER_NOT_AVAILABLE, "partition_index": index,
            "leader_id": info.leader if leader_known else -1, "leader_epoch": info.leader_epoch,
            "replica_nodes": list(info.replicas), "isr_nodes": list(info.isr),
            "offline_replicas": info.offline_replicas(image.brokers),
        })
    return {
        "error_code": 0, "name": topic.name, "topic_id": topic.topic_id, "is_internal": topic.internal,
        "partitions": partitions,
    }


@handler("Metadata")
async def handle(ctx, request):
    store = ctx.metadata
    requested = request["topics"]
    topics = []
    if requested is None:  # null: every topic
        image = store.image
        topics = [topic_metadata(image, image.topics[name]) for name in sorted(image.topics)]
    else:
        for entry in requested:
            name = entry["name"]
            if name is None:
                name = store.image.topic_name(entry["topic_id"]) if entry["topic_id"] != ZERO_UUID else None
                if name is None:
                    topics.append({"error_code": ErrorCode.UNKNOWN_TOPIC_ID, "name": None,
                                   "topic_id": entry["topic_id"]})
                    continue
            try:
                if name not in store.image.topics:
                    validate_topic_name(name)  # INVALID_TOPIC_EXCEPTION, as Kafka answers, auto-creation or not
                # Before v4 there is no such field; it decodes as True, the old behaviour.
                exists = name in store.image.topics or (
                    request["allow_auto_topic_creation"] and await store.ensure_topic(name))
            except (InvalidTopicName, LogError, OSError) as e:
                topics.append({"error_code": error_code_for(e), "name": name})
                continue
            if exists:
                topics.append(topic_metadata(store.image, store.image.topics[name]))
            else:
                topics.append({"error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "name": name})
    image = store.image
    return {
        "throttle_time_ms": 0,
        "brokers": [{"node_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack}
                    for b in sorted(image.brokers.values(), key=lambda b: b.node_id)],
        "cluster_id": image.cluster_id,
        "controller_id": image.controller_id,
        "topics": topics,
    }
