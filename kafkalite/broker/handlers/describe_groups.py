"""DescribeGroups (key 15): versions 0-5. An unknown group is described as Dead with no error, as in Kafka."""

from __future__ import annotations

from kafkalite.broker.registry import handler

# Kafka's AclOperation codes for a group: READ, DELETE, DESCRIBE; without an authorizer all are allowed.
ALL_GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)
OPERATIONS_NOT_REQUESTED = -(2**31)


@handler("DescribeGroups")
async def handle(ctx, request):
    groups = ctx.groups
    operations = ALL_GROUP_OPERATIONS if request.get("include_authorized_operations") else OPERATIONS_NOT_REQUESTED
    described = []
    for group_id in request["groups"]:
        if code := groups.coordinator_error(group_id):
            described.append({"error_code": code, "group_id": group_id,
                              "group_state": "", "protocol_type": "", "protocol_data": "", "members": [],
                              "authorized_operations": OPERATIONS_NOT_REQUESTED})
            continue
        d = groups.describe_group(group_id)
        described.append({
            "error_code": d.error, "group_id": d.group_id, "group_state": d.state,
            "protocol_type": d.protocol_type, "protocol_data": d.protocol_data,
            "members": [
                {"member_id": m.member_id, "group_instance_id": m.group_instance_id, "client_id": m.client_id,
                 "client_host": m.client_host, "member_metadata": m.metadata, "member_assignment": m.assignment}
                for m in d.members
            ],
            "authorized_operations": operations,
        })
    return {"throttle_time_ms": 0, "groups": described}
