"""Heartbeat (key 12): versions 0-4. REBALANCE_IN_PROGRESS tells a member to join again."""

from __future__ import annotations

from kafkalite.broker.registry import handler


@handler("Heartbeat")
async def handle(ctx, request):
    groups = ctx.groups
    if code := groups.coordinator_error(request["group_id"]):
        return {"throttle_time_ms": 0, "error_code": code}
    code = await groups.heartbeat(
        request["group_id"], request["member_id"], request["generation_id"],
        request.get("group_instance_id") if ctx.api_version >= 3 else None,
    )
    return {"throttle_time_ms": 0, "error_code": code}
