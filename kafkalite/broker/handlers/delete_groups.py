"""DeleteGroups (key 42): versions 0-2. Only an empty group can go; its offsets go with it."""

from __future__ import annotations

from kafkalite.broker.registry import handler


@handler("DeleteGroups")
async def handle(ctx, request):
    groups = ctx.groups
    names = list(request["groups_names"])
    refused = {name: code for name in names if (code := groups.coordinator_error(name))}
    results = await groups.delete_groups([n for n in dict.fromkeys(names) if n not in refused])
    results.update(refused)
    return {"throttle_time_ms": 0,
            "results": [{"group_id": name, "error_code": results[name]} for name in dict.fromkeys(names)]}
