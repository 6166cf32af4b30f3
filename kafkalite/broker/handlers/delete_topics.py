"""DeleteTopics (key 20): versions 1-6 (names in topic_names up to v5, in topics[] from v6)."""

import asyncio
import logging

from kafkalite.broker.broker import OFFSETS_TOPIC
from kafkalite.broker.errors import error_code_for
from kafkalite.broker.registry import handler
from kafkalite.log.errors import LogError
from kafkalite.protocol.errors import ErrorCode

log = logging.getLogger("kafkalite.broker")


@handler("DeleteTopics")
async def handle(ctx, request):
    broker = ctx.broker
    if ctx.api_version >= 6:
        wanted = [(t["name"], t["topic_id"]) for t in request["topics"]]
    else:
        wanted = [(name, None) for name in request["topic_names"]]
    by_id = {broker.logs.topic(n).id: n for n in broker.logs.topics()}
    responses = []
    for name, topic_id in wanted:
        resp = {"name": name, "error_code": 0, "error_message": None}
        if topic_id is not None:
            resp["topic_id"] = topic_id
        responses.append(resp)
        if name is None:
            name = resp["name"] = by_id.get(topic_id)
            if name is None:
                resp["error_code"] = ErrorCode.UNKNOWN_TOPIC_ID
                continue
        if name == OFFSETS_TOPIC:
            resp["error_code"], resp["error_message"] = ErrorCode.INVALID_TOPIC_EXCEPTION, "internal topic"
            continue
        if name in broker.logs.topics():
            await broker.wait_housekeeping_done(broker.logs.topic(name).logs)
        if name not in broker.logs.topics():  # (also when deleted by another request while we waited)
            resp["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            continue
        try:
            resp["topic_id"] = broker.logs.topic(name).id
            doomed = broker.logs.delete_topic(name, remove_files=False)
            await asyncio.to_thread(broker.logs.remove_deleted, doomed)  # large files take a while to unlink
            log.info("deleted topic %s (client %r at %s)", name, ctx.client_id, ctx.client_host)
        except (LogError, OSError) as e:
            resp["error_code"], resp["error_message"] = error_code_for(e), str(e)
    return {"throttle_time_ms": 0, "responses": responses}
