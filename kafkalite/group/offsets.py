"""Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete and expiry by offsets.retention.minutes."""

from __future__ import annotations

from typing import Iterable

from kafkalite.group import records as rec
from kafkalite.group.base import CoordinatorBase
from kafkalite.group.types import (
    CONSUMER_PROTOCOL_TYPE,
    FENCED_INSTANCE_ID,
    GROUP_SUBSCRIBED_TO_TOPIC,
    NONE,
    CommitPlan,
    CommittedOffset,
    Effects,
    Group,
    GroupState,
    OffsetCommitRequest,
)
from kafkalite.protocol.errors import ErrorCode


class OffsetStore(CoordinatorBase):
    # ------------------------------------------------------------ offsets

    def offset_commit(self, now_ms: int, r: OffsetCommitRequest, transactional: bool = False) -> CommitPlan:
        """transactional: a TxnOffsetCommit, checked as Kafka does (a member and a generation only when given)."""
        keys = [(topic, partition) for topic, partition, *_ in r.offsets]
        plan = CommitPlan(r.group_id)
        code = self._txn_commit_check(r) if transactional else self._commit_check(now_ms, r)
        if code != NONE:
            plan.errors = {key: code for key in keys}
            plan.effects = self._done()
            return plan
        for topic, partition, offset, leader_epoch, metadata in r.offsets:
            metadata = metadata or ""
            if len(metadata.encode("utf-8")) > self.config.offset_metadata_max_bytes:
                plan.errors[(topic, partition)] = ErrorCode.OFFSET_METADATA_TOO_LARGE
                continue
            entry = CommittedOffset(offset, leader_epoch, metadata, now_ms)
            plan.errors[(topic, partition)] = NONE
            plan.accepted[(topic, partition)] = entry
            value = rec.OffsetValue(offset, leader_epoch, metadata, now_ms)
            self._record(r.group_id, rec.offset_key(r.group_id, topic, partition), rec.offset_value(value))
        plan.effects = self._done()
        return plan

    def _commit_check(self, now: int, r: OffsetCommitRequest) -> int:
        if (code := self.coordinator_error(r.group_id)) != NONE:
            return code
        group = self.groups.get(r.group_id)
        if group is None:
            # generation -1: a consumer using assign(), not group management
            return NONE if r.generation_id < 0 else ErrorCode.ILLEGAL_GENERATION
        if group.is_fenced(r.member_id, r.group_instance_id):
            return FENCED_INSTANCE_ID
        if r.generation_id < 0 and group.state == GroupState.EMPTY:
            return NONE
        member = group.members.get(r.member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if r.generation_id != group.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        if group.state == GroupState.COMPLETING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        self._touch(group, member, now)
        return NONE

    def _txn_commit_check(self, r: OffsetCommitRequest) -> int:
        """As Kafka: without a generation (-1, as v0-2 send) the commit needs no group, or one with no members;
        a member or generation given (v3+) must be the group's, so a group that does not exist is
        ILLEGAL_GENERATION, as for OffsetCommit. Unlike OffsetCommit, no member is needed in a non-empty group."""
        if (code := self.coordinator_error(r.group_id)) != NONE:
            return code
        group = self.groups.get(r.group_id)
        if group is None:
            return NONE if r.generation_id < 0 else ErrorCode.ILLEGAL_GENERATION
        if r.generation_id < 0 and group.state == GroupState.EMPTY:
            return NONE
        if r.generation_id < 0 and not r.member_id and r.group_instance_id is None:
            return NONE
        if group.is_fenced(r.member_id, r.group_instance_id):
            return FENCED_INSTANCE_ID
        if r.member_id not in group.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if r.generation_id != group.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        return NONE

    def apply_commit(self, plan: CommitPlan, now_ms: int) -> None:
        """Make a persisted commit visible. The group is created for commits of assign() users."""
        if not plan.accepted or self.coordinator_error(plan.group_id) != NONE:
            return  # nothing accepted, or the group's partition was unloaded while the commit was persisted
        group = self.groups.get(plan.group_id)
        if group is None:
            group = self.groups[plan.group_id] = Group(plan.group_id, state_timestamp_ms=now_ms)
        group.offsets.update(plan.accepted)

    def offset_fetch(self, group_id: str, partitions: Iterable[tuple[str, int]] | None = None
                     ) -> list[tuple[str, int, CommittedOffset | None]]:
        """Committed offsets of the given partitions (None = every partition with a commit)."""
        group = self.groups.get(group_id)
        offsets = group.offsets if group is not None else {}
        if partitions is None:
            return [(t, p, o) for (t, p), o in sorted(offsets.items())]
        return [(t, p, offsets.get((t, p))) for t, p in partitions]

    def offset_delete(self, now_ms: int, group_id: str,
                      partitions: list[tuple[str, int]]) -> tuple[int, dict[tuple[str, int], int], Effects]:
        if (code := self.coordinator_error(group_id)) != NONE:
            return code, {}, self._done()
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.GROUP_ID_NOT_FOUND, {}, self._done()
        if group.state != GroupState.EMPTY and group.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return ErrorCode.NON_EMPTY_GROUP, {}, self._done()
        subscribed: set[str] | None = set()
        if group.state != GroupState.EMPTY:
            subscribed = group.subscribed_topics()
        results = {}
        for topic, partition in partitions:
            if subscribed is None or topic in subscribed:
                results[(topic, partition)] = GROUP_SUBSCRIBED_TO_TOPIC
                continue
            results[(topic, partition)] = NONE
            if group.offsets.pop((topic, partition), None) is not None:
                self._record(group_id, rec.offset_key(group_id, topic, partition), None)
        return NONE, results, self._done()

    def _expire_offsets(self, now: int) -> None:
        retention = self.config.offsets_retention_ms
        for group in list(self.groups.values()):
            if group.state == GroupState.EMPTY:
                if group.protocol_type is not None:
                    # KIP-211: an empty group's offsets live `retention` after it became empty
                    expired = [k for k, o in group.offsets.items()
                               if max(group.state_timestamp_ms, o.commit_timestamp_ms) + retention <= now]
                else:
                    expired = [k for k, o in group.offsets.items() if o.commit_timestamp_ms + retention <= now]
            elif group.state == GroupState.STABLE and (subscribed := group.subscribed_topics()) is not None:
                expired = [k for k, o in group.offsets.items()
                           if k[0] not in subscribed and o.commit_timestamp_ms + retention <= now]
            else:
                expired = []
            for topic, partition in expired:
                del group.offsets[(topic, partition)]
                self._record(group.group_id, rec.offset_key(group.group_id, topic, partition), None)
            if expired:
                self._event(group, f"{len(expired)} committed offset(s) expired")
            self._drop_if_unused(group)
