"""SyncGroup (key 14): versions 0-5. A long poll: followers wait for the leader's assignment."""

from __future__ import annotations

from kafkalite.broker.registry import handler
from kafkalite.group import SyncRequest
from kafkalite.protocol.errors import ErrorCode


@handler("SyncGroup")
async def handle(ctx, request):
    version = ctx.api_version
    groups = ctx.groups
    if code := groups.coordinator_error(request["group_id"]):
        return {"throttle_time_ms": 0, "error_code": code, "assignment": b""}
    result = await groups.sync_group(SyncRequest(
        group_id=request["group_id"],
        generation_id=request["generation_id"],
        member_id=request["member_id"],
        assignments=[(a["member_id"], bytes(a["assignment"])) for a in request["assignments"]],
        group_instance_id=request.get("group_instance_id") if version >= 3 else None,
        protocol_type=request.get("protocol_type") if version >= 5 else None,
        protocol_name=request.get("protocol_name") if version >= 5 else None,
    ))
    response = {"throttle_time_ms": 0, "error_code": result.error, "assignment": result.assignment}
    if version >= 5 and result.error == ErrorCode.NONE:
        response.update(protocol_type=result.protocol_type, protocol_name=result.protocol_name)
    return response
