"""TxnOffsetCommit's generation and member (v3+) for a group that does not exist or has no members, and a
member's -1 generation in a formed group: checked as Kafka's group coordinator does (the cases of a stable group
are in tests/txn/test_txn_group_checks.py)."""

from __future__ import annotations

import pytest

from group_harness import Harness
from kafkalite.group import OffsetCommitRequest
from kafkalite.protocol.errors import ErrorCode


def txn_commit(h: Harness, group: str, generation: int, member: str) -> int:
    plan = h.c.offset_commit(h.now, OffsetCommitRequest(group, generation, member, [("t", 0, 5, -1, "")]),
                             transactional=True)
    return plan.errors[("t", 0)]


@pytest.mark.parametrize("generation, member, expected", [
    (-1, "", ErrorCode.NONE),  # v0-2 (or a producer outside group management): no group needed
    (1, "", ErrorCode.ILLEGAL_GENERATION),
    (1, "nobody", ErrorCode.ILLEGAL_GENERATION),  # as OffsetCommit answers
])
def test_a_group_that_does_not_exist(generation, member, expected):
    h = Harness()
    assert txn_commit(h, "missing", generation, member) == expected


@pytest.mark.parametrize("generation, member, expected", [
    (-1, "", ErrorCode.NONE),
    (-1, "nobody", ErrorCode.NONE),  # no generation: the empty group takes it whoever names themselves
    (0, "nobody", ErrorCode.UNKNOWN_MEMBER_ID),
])
def test_a_group_with_no_members(generation, member, expected):
    h = Harness()
    assert h.commit("simple", "", -1, {("t", 0): 1}) == {("t", 0): ErrorCode.NONE}  # assign() user: group, no members
    assert h.state("simple") == "Empty"
    assert txn_commit(h, "simple", generation, member) == expected


def test_a_member_without_its_generation_in_a_formed_group():
    h = Harness()
    [member], generation = h.stable_group("g")
    assert txn_commit(h, "g", -1, member) == ErrorCode.ILLEGAL_GENERATION
    assert txn_commit(h, "g", generation, member) == ErrorCode.NONE
