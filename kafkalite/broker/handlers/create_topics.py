"""CreateTopics (key 19): versions 2-7. validate_only, configs, replication factor (-1: the default) or explicit
replica assignments; standalone only a factor of 1, in a cluster up to the live broker count."""

import logging

from kafkalite.broker.errors import Rejected, error_code_for
from kafkalite.broker.registry import handler
from kafkalite.log.config import LogConfig
from kafkalite.log.errors import LogError
from kafkalite.log.manager import MAX_PARTITIONS_PER_REQUEST, validate_topic_name
from kafkalite.protocol.errors import ErrorCode

log = logging.getLogger("kafkalite.broker")


def check(ctx, topic: dict) -> tuple[int, int, list[tuple[int, ...]] | None]:
    """(partitions, replication factor, replica assignments or None) to create; raises Rejected when the request
    is not acceptable."""
    partitions, factor = topic["num_partitions"], topic["replication_factor"]
    assignments = None
    if partitions == -1:
        partitions = ctx.config["num.partitions"]
    if factor == -1:
        factor = ctx.config["default.replication.factor"]
    if topic["assignments"]:
        if topic["num_partitions"] != -1 or topic["replication_factor"] != -1:
            raise Rejected(ErrorCode.INVALID_REQUEST,
                           "give num_partitions and replication_factor, or assignments, not both")
        assignments = [tuple(a["broker_ids"]) for a in sorted(topic["assignments"], key=lambda a: a["partition_index"])]
        if [a["partition_index"] for a in sorted(topic["assignments"], key=lambda a: a["partition_index"])] != list(
                range(len(assignments))):
            raise Rejected(ErrorCode.INVALID_REPLICA_ASSIGNMENT, "assignments must number partitions 0, 1, 2, ...")
        live = ctx.metadata.image.brokers
        for replicas in assignments:
            if not replicas or len(set(replicas)) != len(replicas) or any(b not in live for b in replicas):
                raise Rejected(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                               f"replica assignment {list(replicas)} names a broker twice or one that is not live "
                               f"(live: {sorted(live)})")
        partitions, factor = len(assignments), len(assignments[0])
    if partitions < 1:
        raise Rejected(ErrorCode.INVALID_PARTITIONS, "the number of partitions must be at least 1")
    if partitions > MAX_PARTITIONS_PER_REQUEST:
        raise Rejected(ErrorCode.INVALID_PARTITIONS, f"more than {MAX_PARTITIONS_PER_REQUEST} partitions at once")
    live = len(ctx.metadata.image.brokers)
    if not 1 <= factor <= live:
        raise Rejected(ErrorCode.INVALID_REPLICATION_FACTOR,
                       f"replication factor {factor} is more than the {live} live broker(s)" if factor > 1 else
                       "replication factor must be at least 1")
    return partitions, factor, assignments


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
            partitions, factor, assignments = check(ctx, topic)
            if name in store.image.topics:
                raise Rejected(ErrorCode.TOPIC_ALREADY_EXISTS, f"topic {name} already exists")
            if request["validate_only"]:
                validate_topic_name(name)
                effective = LogConfig.from_configs(configs, store.topic_defaults)
            else:
                created = await store.create_topic(name, partitions, configs, factor, assignments)
                result["topic_id"] = created.topic_id
                log.info("created topic %s with %d partition(s), configs %s (client %r at %s)", name, partitions,
                         configs or "default", ctx.client_id, ctx.peer)
                effective = store.topic_config(name)
        except Rejected as e:
            result["error_code"], result["error_message"] = e.code, e.message
            continue
        except (LogError, OSError) as e:
            result["error_code"], result["error_message"] = error_code_for(e), str(e)
            continue
        result["num_partitions"] = partitions
        result["replication_factor"] = factor
        result["configs"] = [
            {"name": k, "value": v, "read_only": False, "config_source": 1 if k in configs else 5,
             "is_sensitive": False}
            for k, v in effective.to_configs().items()
        ]
    return {"throttle_time_ms": 0, "topics": results}
