"""LeaveGroup (key 13): versions 0-4 (v3+ removes a batch of members, by member id or group.instance.id)."""

from __future__ import annotations

from kafkalite.broker.registry import handler
from kafkalite.protocol.errors import ErrorCode


@handler("LeaveGroup")
async def handle(ctx, request):
    batched = ctx.api_version >= 3
    if batched:
        members = [(m["member_id"], m.get("group_instance_id")) for m in request["members"]]
    else:
        members = [(request["member_id"], None)]
    groups = ctx.groups
    if code := groups.coordinator_error(request["group_id"]):
        return {"throttle_time_ms": 0, "error_code": code, "members": []}
    code, codes = await groups.leave_group(request["group_id"], members)
    if not batched:
        # before v3 the one member's error is the response's error
        return {"throttle_time_ms": 0, "error_code": code or codes[0]}
    if code:
        return {"throttle_time_ms": 0, "error_code": code, "members": []}
    return {
        "throttle_time_ms": 0, "error_code": ErrorCode.NONE,
        "members": [{"member_id": m, "group_instance_id": i, "error_code": c} for (m, i), c in zip(members, codes)],
    }
