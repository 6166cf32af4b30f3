"""Membership: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, the rebalance phases and their timers."""

from __future__ import annotations

from kafkalite.group.base import CoordinatorBase
from kafkalite.group.types import (
    FENCED_INSTANCE_ID,
    NONE,
    Effects,
    Group,
    GroupState,
    JoinRequest,
    JoinResult,
    Member,
    SyncRequest,
    SyncResult,
    TimerKey,
    TimerKind,
    Token,
)
from kafkalite.protocol.errors import ErrorCode


class Membership(CoordinatorBase):
    # ------------------------------------------------------------ JoinGroup

    def join_group(self, token: Token, now_ms: int, request: JoinRequest) -> Effects:
        self._join(token, now_ms, request)
        return self._done()

    def _join(self, token: Token, now: int, r: JoinRequest) -> None:
        def fail(code: int, member_id: str = r.member_id) -> None:
            self._reply(token, JoinResult(code, member_id))

        if not r.group_id:
            return fail(ErrorCode.INVALID_GROUP_ID)
        if (code := self.coordinator_error(r.group_id)) != NONE:
            return fail(code)
        if not self.config.min_session_timeout_ms <= r.session_timeout_ms <= self.config.max_session_timeout_ms:
            return fail(ErrorCode.INVALID_SESSION_TIMEOUT)
        group = self.groups.get(r.group_id)
        if group is None:
            if r.member_id:
                return fail(ErrorCode.UNKNOWN_MEMBER_ID)
            group = self.groups[r.group_id] = Group(r.group_id, state_timestamp_ms=now)
        known = r.member_id if r.member_id in group.members else None
        if not group.supports(r.protocol_type, [name for name, _ in r.protocols], known):
            self._drop_if_unused(group, announce=False)  # it was created for this join only
            return fail(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        # A static member coming back replaces itself: it never makes the group bigger.
        if r.group_instance_id not in group.static_members and not self._accepts_joining(group, r.member_id):
            self._drop_if_unused(group, announce=False)
            return fail(ErrorCode.GROUP_MAX_SIZE_REACHED)
        if not r.member_id:
            return self._join_new_member(group, token, now, r)
        if r.member_id in group.pending_members:
            del group.pending_members[r.member_id]
            return self._add_member_and_rebalance(group, token, now, r, r.member_id)
        if group.is_fenced(r.member_id, r.group_instance_id):
            return fail(FENCED_INSTANCE_ID)
        member = group.members.get(r.member_id)
        if member is None:
            return fail(ErrorCode.UNKNOWN_MEMBER_ID)
        self._touch(group, member, now)
        if group.state == GroupState.PREPARING_REBALANCE:
            self._update_member_and_rebalance(group, member, token, now, r)
        elif group.state == GroupState.COMPLETING_REBALANCE:
            if member.protocols == r.protocols:
                # a retried join (its response was lost): hand out the current generation again
                self._reply(token, self._join_result(group, member))
            else:
                self._update_member_and_rebalance(group, member, token, now, r)
        elif group.state == GroupState.STABLE:
            # a join from the leader forces a rebalance: it may have seen topic metadata change
            if member.member_id == group.leader_id or member.protocols != r.protocols:
                self._update_member_and_rebalance(group, member, token, now, r)
            else:
                self._reply(token, self._join_result(group, member))
        else:
            fail(ErrorCode.UNKNOWN_MEMBER_ID)

    def _accepts_joining(self, group: Group, member_id: str) -> bool:
        """group.max.size, as Kafka applies it: members already in the group are always let back in (during a
        rebalance, those already waiting for it); new ones only while the group has room. Counting the waiting
        members during a rebalance lets a lowered limit shed the last members to rejoin."""
        limit = self.config.max_size
        if group.state == GroupState.PREPARING_REBALANCE:
            member = group.members.get(member_id)
            waiting = sum(1 for m in group.members.values() if m.join_token is not None)
            return (member is not None and member.join_token is not None) or waiting < limit
        if group.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
            return member_id in group.members or len(group.members) < limit
        return True  # an empty group takes anyone

    def _join_new_member(self, group: Group, token: Token, now: int, r: JoinRequest) -> None:
        member_id = f"{r.client_id}-{self._new_uuid()}"
        if r.group_instance_id is not None:
            old_id = group.static_members.get(r.group_instance_id)
            if old_id is not None and old_id in group.members:
                return self._replace_static_member(group, token, now, r, old_id, member_id)
            return self._add_member_and_rebalance(group, token, now, r, member_id)
        if r.require_known_member_id:
            # v4+: hand out the id first; the member joins again with it
            deadline = now + r.session_timeout_ms
            group.pending_members[member_id] = deadline
            self._timer(deadline, TimerKey(TimerKind.PENDING, group.group_id, member_id))
            self._reply(token, JoinResult(ErrorCode.MEMBER_ID_REQUIRED, member_id))
            return
        self._add_member_and_rebalance(group, token, now, r, member_id)

    def _add_member_and_rebalance(self, group: Group, token: Token, now: int, r: JoinRequest, member_id: str) -> None:
        member = Member(
            member_id, r.group_instance_id, r.client_id, r.client_host, r.session_timeout_ms,
            r.rebalance_timeout_ms, r.protocol_type, list(r.protocols), join_token=token,
        )
        if not group.members:
            group.protocol_type = r.protocol_type
        group.members[member_id] = member
        if r.group_instance_id is not None:
            group.static_members[r.group_instance_id] = member_id
        if group.leader_id is None:
            group.leader_id = member_id
        if group.state == GroupState.PREPARING_REBALANCE and group.in_initial_delay:
            group.new_member_added = True
        static = f" (static, instance {r.group_instance_id})" if r.group_instance_id is not None else ""
        self._event(group, f"member {member_id} joined{static}")
        self._touch(group, member, now)
        self._maybe_prepare_rebalance(group, now, f"member {member_id} joined")
        self._maybe_complete_join(group, now)

    def _update_member_and_rebalance(self, group: Group, member: Member, token: Token, now: int,
                                     r: JoinRequest) -> None:
        if member.join_token is not None and member.join_token != token:
            self._reply(member.join_token, JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member.member_id))
        member.protocols = list(r.protocols)
        member.session_timeout_ms = r.session_timeout_ms
        member.rebalance_timeout_ms = r.rebalance_timeout_ms
        member.join_token = token
        self._maybe_prepare_rebalance(group, now, f"member {member.member_id} rejoined")
        self._maybe_complete_join(group, now)

    def _replace_static_member(self, group: Group, token: Token, now: int, r: JoinRequest, old_id: str,
                               new_id: str) -> None:
        old = group.members.pop(old_id)
        # the old incarnation's parked requests are fenced
        if old.join_token is not None:
            self._reply(old.join_token, JoinResult(FENCED_INSTANCE_ID, old_id))
        if old.sync_token is not None:
            self._reply(old.sync_token, SyncResult(FENCED_INSTANCE_ID))
        protocols_unchanged = old.protocols == list(r.protocols) or (
            group.protocol_name is not None
            and old.metadata_for(group.protocol_name) == dict(r.protocols).get(group.protocol_name)
        )
        member = Member(
            new_id, r.group_instance_id, r.client_id, r.client_host, r.session_timeout_ms,
            r.rebalance_timeout_ms, r.protocol_type, list(r.protocols), assignment=old.assignment,
        )
        group.members[new_id] = member
        group.static_members[r.group_instance_id] = new_id
        self._event(group, f"static member {r.group_instance_id} rejoined as {new_id}, replacing {old_id}")
        if group.leader_id == old_id:
            group.leader_id = new_id
        if old_id in group.pending_sync:
            group.pending_sync.discard(old_id)
            group.pending_sync.add(new_id)
        self._touch(group, member, now)
        if group.state == GroupState.STABLE and protocols_unchanged:
            # a static member bouncing back keeps its assignment without a rebalance
            self._persist_group(group)
            self._reply(token, self._join_result(group, member))
            return
        member.join_token = token
        self._maybe_prepare_rebalance(group, now, f"static member {r.group_instance_id} rejoined")
        self._maybe_complete_join(group, now)

    def _join_result(self, group: Group, member: Member) -> JoinResult:
        members = []
        if member.member_id == group.leader_id:
            members = [(m.member_id, m.group_instance_id, m.metadata_for(group.protocol_name))
                       for m in group.members.values()]
        return JoinResult(
            NONE, member.member_id, group.generation_id, group.protocol_type, group.protocol_name,
            group.leader_id or "", members,
        )

    # ------------------------------------------------------------ rebalance phases

    def _maybe_prepare_rebalance(self, group: Group, now: int, reason: str) -> None:
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY):
            self._prepare_rebalance(group, now, reason)

    def _prepare_rebalance(self, group: Group, now: int, reason: str) -> None:
        self._event(group, f"rebalance started in state {group.state.value}, generation {group.generation_id} "
                           f"({reason})")
        if group.state == GroupState.COMPLETING_REBALANCE:
            # the assignment being synced is void now: send everyone back to join
            for m in group.members.values():
                m.assignment = b""
                if m.sync_token is not None:
                    self._reply(m.sync_token, SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
                    m.sync_token = None
        group.pending_sync.clear()
        was_empty = group.state == GroupState.EMPTY
        group.state = GroupState.PREPARING_REBALANCE
        group.state_timestamp_ms = now
        group.rebalance_id += 1
        key = TimerKey(TimerKind.JOIN, group.group_id, group.rebalance_id)
        delay = self.config.initial_rebalance_delay_ms
        if was_empty and delay > 0:
            group.in_initial_delay = True
            group.new_member_added = False
            group.initial_delay_remaining_ms = max(group.rebalance_timeout_ms() - delay, 0)
            self._timer(now + delay, key)
        else:
            group.in_initial_delay = False
            self._timer(now + group.rebalance_timeout_ms(), key)

    def _maybe_complete_join(self, group: Group, now: int) -> None:
        if (
            group.state == GroupState.PREPARING_REBALANCE
            and not group.in_initial_delay
            and not group.pending_members
            and all(m.join_token is not None for m in group.members.values())
        ):
            self._complete_join(group, now)

    def _complete_join(self, group: Group, now: int) -> None:
        for m in list(group.members.values()):
            if m.join_token is None and m.group_instance_id is None:
                self._event(group, f"member {m.member_id} removed: it did not rejoin within the rebalance timeout")
                self._remove_member(group, m)
        joined = [m for m in group.members.values() if m.join_token is not None]
        if not group.members:
            group.generation_id += 1
            group.protocol_name = None
            group.leader_id = None
            group.state = GroupState.EMPTY
            group.state_timestamp_ms = now
            self._event(group, f"now Empty, generation {group.generation_id}")
            self._persist_group(group)
            return
        if not joined:
            # only static members that have not rejoined: wait for them or their session timeouts
            group.rebalance_id += 1
            key = TimerKey(TimerKind.JOIN, group.group_id, group.rebalance_id)
            self._timer(now + group.rebalance_timeout_ms(), key)
            return
        if group.leader_id not in group.members or group.members[group.leader_id].join_token is None:
            group.leader_id = joined[0].member_id
        group.generation_id += 1
        group.protocol_name = group.select_protocol()
        group.state = GroupState.COMPLETING_REBALANCE
        group.state_timestamp_ms = now
        group.pending_sync = {m.member_id for m in joined}
        self._event(group, f"generation {group.generation_id} formed with {len(group.members)} member(s), "
                           f"protocol {group.protocol_name}, leader {group.leader_id}; awaiting its assignment")
        self._timer(now + group.rebalance_timeout_ms(), TimerKey(TimerKind.SYNC, group.group_id, group.generation_id))
        for m in joined:
            self._reply(m.join_token, self._join_result(group, m))
            m.join_token = None
            self._touch(group, m, now)

    def _remove_member(self, group: Group, member: Member) -> None:
        if member.join_token is not None:
            self._reply(member.join_token, JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member.member_id))
        if member.sync_token is not None:
            self._reply(member.sync_token, SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        del group.members[member.member_id]
        if (member.group_instance_id is not None
                and group.static_members.get(member.group_instance_id) == member.member_id):
            del group.static_members[member.group_instance_id]
        group.pending_sync.discard(member.member_id)
        if group.leader_id == member.member_id:
            group.leader_id = next(iter(group.members), None)

    def _member_gone(self, group: Group, now: int, reason: str) -> None:
        """After a member left or expired: the others must rebalance."""
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, now, reason)
        self._maybe_complete_join(group, now)

    # ------------------------------------------------------------ SyncGroup

    def sync_group(self, token: Token, now_ms: int, request: SyncRequest) -> Effects:
        self._sync(token, now_ms, request)
        return self._done()

    def _sync(self, token: Token, now: int, r: SyncRequest) -> None:
        def fail(code: int) -> None:
            self._reply(token, SyncResult(code))

        if not r.group_id:
            return fail(ErrorCode.INVALID_GROUP_ID)
        if (code := self.coordinator_error(r.group_id)) != NONE:
            return fail(code)
        group = self.groups.get(r.group_id)
        if group is None:
            return fail(ErrorCode.UNKNOWN_MEMBER_ID)
        if group.is_fenced(r.member_id, r.group_instance_id):
            return fail(FENCED_INSTANCE_ID)
        member = group.members.get(r.member_id)
        if member is None:
            return fail(ErrorCode.UNKNOWN_MEMBER_ID)
        if r.generation_id != group.generation_id:
            return fail(ErrorCode.ILLEGAL_GENERATION)
        if (r.protocol_type is not None and r.protocol_type != group.protocol_type) or (
            r.protocol_name is not None and r.protocol_name != group.protocol_name
        ):
            return fail(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        if group.state == GroupState.PREPARING_REBALANCE:
            return fail(ErrorCode.REBALANCE_IN_PROGRESS)
        self._touch(group, member, now)
        group.pending_sync.discard(member.member_id)
        if group.state == GroupState.STABLE:
            self._reply(token, self._sync_result(group, member))
            return
        if group.state != GroupState.COMPLETING_REBALANCE:
            return fail(ErrorCode.UNKNOWN_MEMBER_ID)
        if member.sync_token is not None and member.sync_token != token:
            self._reply(member.sync_token, SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        member.sync_token = token
        if member.member_id != group.leader_id:
            return
        assignments = dict(r.assignments)
        for m in group.members.values():
            m.assignment = assignments.get(m.member_id, b"")
        self._persist_group(group)
        group.state = GroupState.STABLE
        group.state_timestamp_ms = now
        self._event(group, f"generation {group.generation_id} is Stable: the leader's assignment for "
                           f"{len(group.members)} member(s) is in")
        for m in group.members.values():
            if m.sync_token is not None:
                self._reply(m.sync_token, self._sync_result(group, m))
                m.sync_token = None

    @staticmethod
    def _sync_result(group: Group, member: Member) -> SyncResult:
        return SyncResult(NONE, member.assignment, group.protocol_type, group.protocol_name)

    # ------------------------------------------------------------ Heartbeat, LeaveGroup

    def heartbeat(self, now_ms: int, group_id: str, member_id: str, generation_id: int,
                  group_instance_id: str | None = None) -> tuple[int, Effects]:
        code = self._heartbeat(now_ms, group_id, member_id, generation_id, group_instance_id)
        return code, self._done()

    def _heartbeat(self, now: int, group_id: str, member_id: str, generation_id: int, instance_id: str | None) -> int:
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        if (code := self.coordinator_error(group_id)) != NONE:
            return code
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if group.is_fenced(member_id, instance_id):
            return FENCED_INSTANCE_ID
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if generation_id != group.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        self._touch(group, member, now)
        if group.state == GroupState.PREPARING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        return NONE

    def leave_group(self, now_ms: int, group_id: str,
                    members: list[tuple[str, str | None]]) -> tuple[int, list[int], Effects]:
        """Members are (member id, group instance id); returns (group error, one error per member, effects)."""
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID, [ErrorCode.INVALID_GROUP_ID] * len(members), self._done()
        if (code := self.coordinator_error(group_id)) != NONE:
            return code, [code] * len(members), self._done()
        group = self.groups.get(group_id)
        if group is None:
            return NONE, [ErrorCode.UNKNOWN_MEMBER_ID] * len(members), self._done()
        codes = [self._leave_one(group, now_ms, member_id, instance_id) for member_id, instance_id in members]
        return NONE, codes, self._done()

    def _leave_one(self, group: Group, now: int, member_id: str, instance_id: str | None) -> int:
        if instance_id is not None:
            registered = group.static_members.get(instance_id)
            if registered is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            if member_id and member_id != registered:
                return FENCED_INSTANCE_ID
            member_id = registered
        elif member_id in group.pending_members:
            del group.pending_members[member_id]
            self._maybe_complete_join(group, now)
            return NONE
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        self._event(group, f"member {member_id} left")
        self._remove_member(group, member)
        self._member_gone(group, now, f"member {member_id} left")
        return NONE

    # ------------------------------------------------------------ timers

    def _member_timer_fired(self, kind: TimerKind, group: Group, subject, now_ms: int) -> None:
        if kind == TimerKind.SESSION:
            self._session_expired(group, subject, now_ms)
        elif kind == TimerKind.PENDING:
            deadline = group.pending_members.get(subject)
            if deadline is not None and deadline <= now_ms:
                del group.pending_members[subject]
                self._maybe_complete_join(group, now_ms)
                self._drop_if_unused(group)
        elif kind == TimerKind.JOIN:
            self._join_timer(group, subject, now_ms)
        elif kind == TimerKind.SYNC:
            self._sync_timer(group, subject, now_ms)

    def _session_expired(self, group: Group, member_id: str, now: int) -> None:
        member = group.members.get(member_id)
        if member is None:
            return
        if member.session_deadline_ms > now:
            self._timer(member.session_deadline_ms, TimerKey(TimerKind.SESSION, group.group_id, member_id))
            return
        if member.join_token is not None or member.sync_token is not None:
            # kept alive while parked: the rebalance and sync timeouts bound the wait
            self._touch(group, member, now)
            return
        self._event(group, f"member {member_id} expired: no heartbeat within its session timeout of "
                           f"{member.session_timeout_ms} ms")
        self._remove_member(group, member)
        self._member_gone(group, now, f"member {member_id} expired")

    def _join_timer(self, group: Group, rebalance_id: int, now: int) -> None:
        if group.state != GroupState.PREPARING_REBALANCE or group.rebalance_id != rebalance_id:
            return
        if group.in_initial_delay:
            if group.new_member_added and group.initial_delay_remaining_ms > 0:
                # members keep arriving: wait one more delay, within the rebalance timeout
                delay = min(self.config.initial_rebalance_delay_ms, group.initial_delay_remaining_ms)
                group.initial_delay_remaining_ms -= delay
                group.new_member_added = False
                self._timer(now + delay, TimerKey(TimerKind.JOIN, group.group_id, rebalance_id))
                return
            group.in_initial_delay = False
        self._complete_join(group, now)

    def _sync_timer(self, group: Group, generation_id: int, now: int) -> None:
        if group.generation_id != generation_id or not group.pending_sync:
            return
        if group.state not in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
            return
        for member_id in list(group.pending_sync):
            member = group.members.get(member_id)
            if member is not None:
                self._event(group, f"member {member_id} removed: no SyncGroup within the rebalance timeout")
                self._remove_member(group, member)
        group.pending_sync.clear()
        self._member_gone(group, now, "members missed the SyncGroup deadline")
