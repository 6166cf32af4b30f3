"""FindCoordinator (key 10): versions 0-4 (v4 batches coordinator_keys). This broker coordinates every group."""

from __future__ import annotations

from kafkalite.broker.registry import handler
from kafkalite.protocol.errors import ErrorCode

GROUP_KEY, TRANSACTION_KEY = 0, 1


def _find(ctx, key: str, key_type: int) -> dict:
    me = ctx.metadata.image.brokers[ctx.node_id]
    if key_type not in (GROUP_KEY, TRANSACTION_KEY):
        # transactional ids are sent here too, and InitProducerId refuses them with a clear error
        return {"key": key, "node_id": -1, "host": "", "port": -1, "error_code": ErrorCode.INVALID_REQUEST,
                "error_message": f"unknown coordinator key type {key_type}"}
    return {"key": key, "node_id": me.node_id, "host": me.host, "port": me.port,
            "error_code": ErrorCode.NONE, "error_message": None}


@handler("FindCoordinator")
async def handle(ctx, request):
    key_type = request.get("key_type", GROUP_KEY)
    if ctx.api_version >= 4:
        return {"throttle_time_ms": 0,
                "coordinators": [_find(ctx, key, key_type) for key in request["coordinator_keys"]]}
    found = _find(ctx, request["key"], key_type)
    del found["key"]
    return {"throttle_time_ms": 0, **found}
