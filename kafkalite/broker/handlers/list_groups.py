"""ListGroups (key 16): versions 0-4 (v4 filters by state, in any letter case; empty = all)."""

from __future__ import annotations

from kafkalite.broker.registry import handler
from kafkalite.protocol.errors import ErrorCode


@handler("ListGroups")
async def handle(ctx, request):
    groups = ctx.groups
    if not groups.loaded:
        return {"throttle_time_ms": 0, "error_code": ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, "groups": []}
    states = request.get("states_filter") if ctx.api_version >= 4 else None
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "groups": [{"group_id": g, "protocol_type": p, "group_state": s} for g, p, s in groups.list_groups(states)],
    }
