"""TxnOffsetCommit's checks in the group coordinator, as Kafka's: a member and a generation only when the request
names them (aiokafka and older clients send neither), unlike OffsetCommit."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kafkalite.group import OffsetCommitRequest
from kafkalite.protocol.errors import ErrorCode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "group"))
from group_harness import Harness  # noqa: E402


@pytest.mark.parametrize("member, generation, expected", [
    ("", -1, ErrorCode.NONE),  # neither named: accepted (OffsetCommit would say UNKNOWN_MEMBER_ID)
    ("member", "current", ErrorCode.NONE),
    ("stranger", -1, ErrorCode.UNKNOWN_MEMBER_ID),
    ("member", "stale", ErrorCode.ILLEGAL_GENERATION),
])
def test_txn_offset_commit_checks_on_a_stable_group(member, generation, expected):
    h = Harness()
    [member_id], current = h.stable_group("g")
    member = member_id if member == "member" else member
    generation = {"current": current, "stale": current - 1}.get(generation, generation)
    request = OffsetCommitRequest("g", generation, member, [("t", 0, 5, -1, "")])
    plan = h.c.offset_commit(h.now, request, transactional=True)
    assert plan.errors == {("t", 0): expected}
    if member == "":
        assert h.c.offset_commit(h.now, request).errors == {("t", 0): ErrorCode.UNKNOWN_MEMBER_ID}
