"""CreateTopics (key 19): versions 2-7. validate_only, configs, replication factor 1 or -1."""

import logging

from kafkalite.broker.errors import Rejected, error_code_for
from kafkalite.broker.registry import handler
from kafkalite.log.config import LogConfig
from kafkalite.log.errors import LogError
from kafkalite.log.manager import MAX_PARTITIONS_PER_REQUEST, validate_topic_name
from kafkalite.protocol.errors import ErrorCode

log = logging.getLogger("kafkalite.broker")


def check(ctx, topic: dict) -> int:
    """The partition count to create; raises Rejected when the request is not acceptable."""
    partitions = topic["num_partitions"]
    if partitions == -1:
        partitions = ctx.config["num.partitions"]
    if topic["assignments"]:
        if topic["num_partitions"] != -1:
            raise Rejected(ErrorCode.INVALID_REQUEST, "give num_partitions or assignments, not both")
        partitions = len(topic["assignments"])
        for a in topic["assignments"]:
            if a["broker_ids"] != [ctx.node_id]:
                raise Rejected(ErrorCode.INVALID_REPLICA_ASSIGNMENT, f"only broker {ctx.node_id} exists")
    if partitions < 1:
        raise Rejected(ErrorCode.INVALID_PARTITIONS, "the number of partitions must be at least 1")
    if partitions > MAX_PARTITIONS_PER_REQUEST:
        raise Rejected(ErrorCode.INVALID_PARTITIONS, f"more than {MAX_PARTITIONS_PER_REQUEST} partitions at once")
    if topic["replication_factor"] not in (1, -1):
        raise Rejected(ErrorCode.INVALID_REPLICATION_FACTOR, "replication factor must be 1 on a single broker")
    return partitions


@handler("CreateTopics")
async def handle(ctx, request):
    store = ctx.metadata
    results = []
    names = [t["name"] for t in request["topics"]]
    for topic in request["topics"]:
        name = topic["name"]
        result = {"name": name, "error_code": 0, "error_message": None, "num_partitions": -1,
                  "replication_factor": -1, "configs": []}
        results.append(result)
        configs = {c["name"]: c["value"] for c in topic["configs"]}
        try:
            if names.count(name) > 1:
                raise Rejected(ErrorCode.INVALID_REQUEST, f"topic {name} appears more than once")
            partitions = check(ctx, topic)
            if name in store.image.topics:
                raise Rejected(ErrorCode.TOPIC_ALREADY_EXISTS, f"topic {name} already exists")
            if request["validate_only"]:
                validate_topic_name(name)
                effective = LogConfig.from_configs(configs, store.topic_defaults)
            else:
                result["topic_id"] = (await store.create_topic(name, partitions, configs)).topic_id
                log.info("created topic %s with %d partition(s), configs %s (client %r at %s)", name, partitions,
                         configs or "default", ctx.client_id, ctx.client_host)
                effective = store.topic_config(name)
        except Rejected as e:
            result["error_code"], result["error_message"] = e.code, e.message
            continue
        except (LogError, OSError) as e:
            result["error_code"], result["error_message"] = error_code_for(e), str(e)
            continue
        result["num_partitions"] = partitions
        result["replication_factor"] = 1
        result["configs"] = [
            {"name": k, "value": v, "read_only": False, "config_source": 1 if k in configs else 5,
             "is_sensitive": False}
            for k, v in effective.to_configs().items()
        ]
    return {"throttle_time_ms": 0, "topics": results}
