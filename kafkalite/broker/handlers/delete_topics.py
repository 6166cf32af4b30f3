"""DeleteTopics (key 20): versions 1-6 (names in topic_names up to v5, in topics[] from v6)."""

import asyncio
import logging

from kafkalite.broker.errors import error_code_for
from kafkalite.broker.registry import handler
from kafkalite.group import OFFSETS_TOPIC
from kafkalite.log.errors import LogError
from kafkalite.protocol.errors import ErrorCode

log = logging.getLogger("kafkalite.broker")


@handler("DeleteTopics")
async def handle(ctx, request):
    store, replicas = ctx.metadata, ctx.replicas
    if ctx.api_version >= 6:
        wanted = [(t["name"], t["topic_id"]) for t in request["topics"]]
    else:
        wanted = [(name, None) for name in request["topic_names"]]
    responses = []
    for name, topic_id in wanted:
        resp = {"name": name, "error_code": 0, "error_message": None}
        if topic_id is not None:
            resp["topic_id"] = topic_id
        responses.append(resp)
        if name is None:
            name = resp["name"] = store.image.topic_name(topic_id)
            if name is None:
                resp["error_code"] = ErrorCode.UNKNOWN_TOPIC_ID
                continue
        if name == OFFSETS_TOPIC:
            resp["error_code"], resp["error_message"] = ErrorCode.INVALID_TOPIC_EXCEPTION, "internal topic"
            continue
        topic = store.image.topic(name)
        if topic is not None:
            await replicas.housekeeping_done_with(name)
        topic = store.image.topic(name)
        if topic is None:  # (also when deleted by another request while we waited)
            resp["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            continue
        try:
            resp["topic_id"] = topic.topic_id
            doomed = await store.delete_topic(name)
            await asyncio.to_thread(store.logs.remove_deleted, doomed)  # large files take a while to unlink
            log.info("deleted topic %s (client %r at %s)", name, ctx.client_id, ctx.peer)
        except (LogError, OSError) as e:
            resp["error_code"], resp["error_message"] = error_code_for(e), str(e)
    return {"throttle_time_ms": 0, "responses": responses}
