"""DeleteGroups (key 42): versions 0-2. Only an empty group can go; its offsets go with it."""

from __future__ import annotations

from kafkalite.broker.registry import handler
from kafkalite.protocol.errors import ErrorCode


@handler("DeleteGroups")
async def handle(ctx, request):
    groups = ctx.groups
    names = list(request["groups_names"])
    if not groups.loaded:
        results = {name: ErrorCode.COORDINATOR_LOAD_IN_PROGRESS for name in names}
    else:
        results = await groups.delete_groups(list(dict.fromkeys(names)))
    return {"throttle_time_ms": 0,
            "results": [{"group_id": name, "error_code": results[name]} for name in dict.fromkeys(names)]}
