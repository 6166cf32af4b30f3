"""The coordinator's shared plumbing: its state, effects being collected, and what every part uses."""

from __future__ import annotations

import uuid
from typing import Callable

from kafkalite.group import records as rec
from kafkalite.group.config import GroupConfig
from kafkalite.group.types import NONE, Effects, Group, GroupState, Member, TimerKey, TimerKind, Token
from kafkalite.protocol.errors import ErrorCode


class CoordinatorBase:
    def __init__(self, config: GroupConfig | None = None, new_uuid: Callable[[], str] | None = None):
        self.config = config or GroupConfig()
        self._new_uuid = new_uuid or (lambda: str(uuid.uuid4()))
        self.groups: dict[str, Group] = {}  # the groups of the loaded partitions
        self.loaded_partitions: set[int] = set()
        self.loading_partitions: set[int] = set()
        self._fx = Effects()

    # ------------------------------------------------------------ plumbing

    def _done(self) -> Effects:
        fx, self._fx = self._fx, Effects()
        return fx

    def _reply(self, token: Token, result: object) -> None:
        self._fx.replies.append((token, result))

    def _timer(self, deadline_ms: int, key: TimerKey) -> None:
        self._fx.timers.append((deadline_ms, key))

    def _event(self, group: Group | str, what: str) -> None:
        group_id = group if isinstance(group, str) else group.group_id
        self._fx.events.append(f"group {group_id}: {what}")

    def _record(self, group_id: str, key: bytes, value: bytes | None) -> None:
        partition = rec.partition_for(group_id, self.config.offsets_topic_num_partitions)
        self._fx.records.append((partition, key, value))

    def partition_for(self, group_id: str) -> int:
        return rec.partition_for(group_id, self.config.offsets_topic_num_partitions)

    def start(self, now_ms: int) -> Effects:
        """Arm the periodic offset expiry check; call once, when the first partition is loaded."""
        self._timer(now_ms + self.config.offsets_retention_check_interval_ms, TimerKey(TimerKind.RETENTION))
        return self._done()

    def coordinator_error(self, group_id: str) -> int:
        """NONE if this coordinator serves the group; else the error that sends its client elsewhere or back later."""
        partition = self.partition_for(group_id)
        if partition in self.loaded_partitions:
            return NONE
        if partition in self.loading_partitions:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        return ErrorCode.NOT_COORDINATOR

    def _touch(self, group: Group, member: Member, now: int) -> None:
        member.session_deadline_ms = now + member.session_timeout_ms
        self._timer(member.session_deadline_ms, TimerKey(TimerKind.SESSION, group.group_id, member.member_id))

    def _persist_group(self, group: Group) -> None:
        value = rec.GroupValue(
            group.protocol_type or "", group.generation_id, group.protocol_name, group.leader_id,
            group.state_timestamp_ms,
            [
                rec.MemberValue(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                                m.rebalance_timeout_ms, m.session_timeout_ms,
                                m.metadata_for(group.protocol_name), m.assignment)
                for m in group.members.values()
            ],
        )
        self._record(group.group_id, rec.group_key(group.group_id), rec.group_value(value))

    def _drop_if_unused(self, group: Group, announce: bool = True) -> None:
        """An empty group without offsets or pending joins is gone (Dead)."""
        if group.state == GroupState.EMPTY and not group.members and not group.offsets and not group.pending_members:
            self._remove_group(group, "Dead: no members and no committed offsets left" if announce else None)

    def _remove_group(self, group: Group, why: str | None) -> None:
        if why is not None:
            self._event(group, why)
        group.state = GroupState.DEAD
        self.groups.pop(group.group_id, None)
        if group.generation_id > 0:  # only then was its metadata ever written
            self._record(group.group_id, rec.group_key(group.group_id), None)
