"""JoinGroup (key 11): versions 0-7. A long poll; v4+ members first get MEMBER_ID_REQUIRED with their id."""

from __future__ import annotations

from kafkalite.broker.registry import handler
from kafkalite.group import JoinRequest
from kafkalite.protocol.errors import ErrorCode


@handler("JoinGroup")
async def handle(ctx, request):
    version = ctx.api_version
    groups = ctx.groups
    if code := groups.coordinator_error(request["group_id"]):
        return _response(version, code, request["member_id"])
    rebalance_timeout = request.get("rebalance_timeout_ms", -1)
    if version == 0 or rebalance_timeout < 0:  # v0 has no rebalance timeout: the session timeout serves
        rebalance_timeout = request["session_timeout_ms"]
    result = await groups.join_group(JoinRequest(
        group_id=request["group_id"],
        member_id=request["member_id"],
        session_timeout_ms=request["session_timeout_ms"],
        rebalance_timeout_ms=rebalance_timeout,
        protocol_type=request["protocol_type"],
        protocols=[(p["name"], bytes(p["metadata"])) for p in request["protocols"]],
        group_instance_id=request.get("group_instance_id") if version >= 5 else None,
        client_id=ctx.client_id or "",
        client_host=ctx.client_host,
        require_known_member_id=version >= 4,
    ))
    response = _response(version, result.error, result.member_id)
    if result.error == ErrorCode.NONE:
        response.update(
            generation_id=result.generation_id,
            protocol_type=result.protocol_type,
            protocol_name=result.protocol_name if version >= 7 else (result.protocol_name or ""),
            leader=result.leader,
            members=[{"member_id": m, "group_instance_id": i, "metadata": meta} for m, i, meta in result.members],
        )
    return response


def _response(version: int, error: int, member_id: str) -> dict:
    return {"throttle_time_ms": 0, "error_code": error, "generation_id": -1, "protocol_type": None,
            "protocol_name": None if version >= 7 else "", "leader": "", "member_id": member_id, "members": []}
