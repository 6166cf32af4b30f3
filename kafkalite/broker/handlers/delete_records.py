"""DeleteRecords (key 21): versions 0-2. Moves a partition's log start offset; -1 means the high watermark."""

from __future__ import annotations

from kafkalite.broker.errors import error_code_for
from kafkalite.broker.registry import handler
from kafkalite.group import OFFSETS_TOPIC
from kafkalite.log.errors import LogError
from kafkalite.protocol.errors import ErrorCode
from kafkalite.replication.replica_manager import NotServed


@handler("DeleteRecords")
async def handle(ctx, request):
    replicas = ctx.replicas
    topics = []
    for topic in request["topics"]:
        name = topic["name"]
        partitions = []
        topics.append({"name": name, "partitions": partitions})
        for part in topic["partitions"]:
            resp = {"partition_index": part["partition_index"], "low_watermark": -1, "error_code": 0}
            partitions.append(resp)
            try:
                plog = (await replicas.writable_leader(name, part["partition_index"])).log
            except NotServed as e:
                resp["error_code"] = e.code
                continue
            if name == OFFSETS_TOPIC:
                resp["error_code"] = ErrorCode.INVALID_TOPIC_EXCEPTION  # Kafka: no deleting from internal topics
            elif not plog.config.delete:
                # Kafka refuses it on a topic whose cleanup.policy lacks "delete".
                resp["error_code"] = ErrorCode.POLICY_VIOLATION
            else:
                try:
                    # The log turns -1 into the high watermark and refuses offsets beyond it (OFFSET_OUT_OF_RANGE).
                    resp["low_watermark"] = plog.delete_records(part["offset"])
                except (LogError, OSError) as e:
                    resp["error_code"] = error_code_for(e)
    return {"throttle_time_ms": 0, "topics": topics}
