"""The consumer-group coordinator as a pure state machine.

No I/O, no clock, no asyncio: every call takes `now_ms` and returns `Effects`:

- replies: (token, result) for JoinGroup and SyncGroup requests. Those two are long polls: the
  caller passes an opaque token, and the reply may come in the same call's effects or in a later
  call's (another member's request, or a timer).
- timers: (deadline_ms, key) to arm; arming a key again replaces its deadline. The caller calls
  `timer_fired(key, now_ms)` when one expires. A timer that fires late or needlessly is harmless:
  the handler checks the state it was meant for.
- records: (partition, key, value) to append to `__consumer_offsets` before the replies of the
  same effects are delivered (value None is a tombstone).
- cancel_group_timers: groups whose timers are void (their partition was unloaded); cancel them
  before arming the effects' timers.
- events: one line per group state change (member joined, left, expired; rebalance; generation;
  emptied, dead, deleted) for the caller to log.

The coordinator serves only the groups of the `__consumer_offsets` partitions it has loaded
(`load_partition`); for others it answers NOT_COORDINATOR, and COORDINATOR_LOAD_IN_PROGRESS while
their partition is loading (`begin_loading`). `unload_partition` drops a partition's groups when
its leadership moves away.

Group states follow Kafka's classic protocol:

    Empty --join--> PreparingRebalance --all joined / rebalance timeout--> CompletingRebalance
    CompletingRebalance --leader's SyncGroup--> Stable
    Stable / CompletingRebalance --join of a new or changed member, leave, expiry--> PreparingRebalance
    PreparingRebalance --nobody left--> Empty;  Empty --DeleteGroups / offsets expired--> Dead (removed)
"""

from __future__ import annotations

from typing import Iterable

from kafkalite.group import records as rec
from kafkalite.group.membership import Membership
from kafkalite.group.offsets import OffsetStore
from kafkalite.group.replay import Replay
from kafkalite.group.types import (  # noqa: F401  (re-exported: the coordinator's types, by their old path)
    CONSUMER_PROTOCOL_TYPE,
    FENCED_INSTANCE_ID,
    GROUP_SUBSCRIBED_TO_TOPIC,
    NONE,
    CommitPlan,
    CommittedOffset,
    Effects,
    Group,
    GroupDescription,
    GroupState,
    JoinRequest,
    JoinResult,
    Member,
    MemberDescription,
    OffsetCommitRequest,
    SyncRequest,
    SyncResult,
    TimerKey,
    TimerKind,
    Token,
    parse_subscription_topics,
)
from kafkalite.protocol.errors import ErrorCode


class GroupCoordinator(Membership, OffsetStore, Replay):
    """The facade: membership (membership.py), committed offsets (offsets.py), partition load and unload
    (replay.py), and here the timer dispatch and the group-level admin requests."""

    # ------------------------------------------------------------ timers

    def timer_fired(self, key: TimerKey, now_ms: int) -> Effects:
        kind, group_id, subject = key
        if kind == TimerKind.RETENTION:
            self._expire_offsets(now_ms)
            self._timer(now_ms + self.config.offsets_retention_check_interval_ms, TimerKey(TimerKind.RETENTION))
            return self._done()
        group = self.groups.get(group_id)
        if group is not None:
            self._member_timer_fired(kind, group, subject, now_ms)
        return self._done()

    # ------------------------------------------------------------ DescribeGroups, ListGroups, DeleteGroups

    def describe_group(self, group_id: str) -> GroupDescription:
        if (code := self.coordinator_error(group_id)) != NONE:
            return GroupDescription(group_id, "", "", "", [], error=code)
        group = self.groups.get(group_id)
        if group is None:
            return GroupDescription(group_id, GroupState.DEAD.value, "", "", [])
        # As Kafka 4: the protocol and the members' metadata only once Stable, each member's last assignment always.
        stable = group.state == GroupState.STABLE
        members = [
            MemberDescription(
                m.member_id, m.group_instance_id, m.client_id, m.client_host,
                m.metadata_for(group.protocol_name) if stable else b"", m.assignment,
            )
            for m in group.members.values()
        ]
        return GroupDescription(
            group_id, group.state.value, group.protocol_type or "",
            (group.protocol_name or "") if stable else "", members,
        )

    def list_groups(self, states: Iterable[str] | None = None) -> list[tuple[str, str, str]]:
        """(group id, protocol type, state) of every group, optionally only in `states` (any case)."""
        wanted = {s.lower() for s in states} if states else None
        return [
            (g.group_id, g.protocol_type or "", g.state.value)
            for g in sorted(self.groups.values(), key=lambda g: g.group_id)
            if wanted is None or g.state.value.lower() in wanted
        ]

    def delete_groups(self, now_ms: int, group_ids: list[str]) -> tuple[dict[str, int], Effects]:
        results = {}
        for group_id in group_ids:
            group = self.groups.get(group_id)
            if (code := self.coordinator_error(group_id)) != NONE:
                results[group_id] = code
            elif group is None:
                results[group_id] = ErrorCode.GROUP_ID_NOT_FOUND
            elif group.state != GroupState.EMPTY:
                results[group_id] = ErrorCode.NON_EMPTY_GROUP
            else:
                for topic, partition in group.offsets:
                    self._record(group_id, rec.offset_key(group_id, topic, partition), None)
                group.offsets.clear()
                self._remove_group(group, "deleted")
                results[group_id] = NONE
        return results, self._done()
