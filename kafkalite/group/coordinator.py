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

import enum
import uuid
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable, NamedTuple

from kafkalite.group import records as rec
from kafkalite.group.config import GroupConfig
from kafkalite.protocol.codec import decode_data
from kafkalite.protocol.errors import DecodeError, ErrorCode
from kafkalite.protocol.messages.data.consumer_protocol import PROTOCOL_TYPE, SUBSCRIPTION


NONE = ErrorCode.NONE
FENCED_INSTANCE_ID = ErrorCode.FENCED_INSTANCE_ID
GROUP_SUBSCRIBED_TO_TOPIC = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC

CONSUMER_PROTOCOL_TYPE = PROTOCOL_TYPE

Token = Hashable


class TimerKind(str, enum.Enum):
    SESSION = "session"  # a member's session timeout; subject: member id
    PENDING = "pending"  # a member id handed out by MEMBER_ID_REQUIRED; subject: member id
    JOIN = "join"  # the end of a join phase; subject: the group's rebalance id
    SYNC = "sync"  # the leader's SyncGroup is due; subject: the generation
    RETENTION = "retention"  # the periodic offset expiry check (no group)


class TimerKey(NamedTuple):
    kind: TimerKind
    group_id: str = ""
    subject: str | int = ""


class GroupState(str, enum.Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


# ---------------------------------------------------------------- inputs and results


@dataclass
class JoinRequest:
    group_id: str
    member_id: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]  # (name, metadata) in the member's order of preference
    group_instance_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    require_known_member_id: bool = True  # JoinGroup v4+


@dataclass
class JoinResult:
    error: int
    member_id: str
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    members: list[tuple[str, str | None, bytes]] = field(default_factory=list)  # leader only


@dataclass
class SyncRequest:
    group_id: str
    generation_id: int
    member_id: str
    assignments: list[tuple[str, bytes]] = field(default_factory=list)
    group_instance_id: str | None = None
    protocol_type: str | None = None  # v5+: checked when given
    protocol_name: str | None = None


@dataclass
class SyncResult:
    error: int
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


@dataclass
class OffsetCommitRequest:
    group_id: str
    generation_id: int
    member_id: str
    offsets: list[tuple[str, int, int, int, str | None]]  # topic, partition, offset, leader epoch, metadata
    group_instance_id: str | None = None


@dataclass
class CommittedOffset:
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp_ms: int


@dataclass
class CommitPlan:
    """A validated OffsetCommit: persist `effects.records`, then `apply_commit(plan)`, then reply `errors`."""

    group_id: str
    errors: dict[tuple[str, int], int] = field(default_factory=dict)
    accepted: dict[tuple[str, int], CommittedOffset] = field(default_factory=dict)
    effects: Effects = field(default_factory=lambda: Effects())


@dataclass
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass
class GroupDescription:
    group_id: str
    state: str
    protocol_type: str
    protocol_data: str
    members: list[MemberDescription]
    error: int = NONE


@dataclass
class Effects:
    replies: list[tuple[Token, object]] = field(default_factory=list)
    timers: list[tuple[int, TimerKey]] = field(default_factory=list)
    records: list[tuple[int, bytes, bytes | None]] = field(default_factory=list)
    cancel_group_timers: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- state


@dataclass
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    assignment: bytes = b""
    join_token: Token | None = None  # a parked JoinGroup
    sync_token: Token | None = None  # a parked SyncGroup
    session_deadline_ms: int = 0

    def protocol_names(self) -> list[str]:
        return [name for name, _ in self.protocols]

    def metadata_for(self, protocol: str | None) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        return b""

    def vote(self, candidates: set[str]) -> str:
        return next(name for name in self.protocol_names() if name in candidates)


@dataclass
class Group:
    group_id: str
    state: GroupState = GroupState.EMPTY
    state_timestamp_ms: int = 0
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)  # in join order
    static_members: dict[str, str] = field(default_factory=dict)  # group.instance.id -> member id
    pending_members: dict[str, int] = field(default_factory=dict)  # ids handed out by MEMBER_ID_REQUIRED -> deadline
    pending_sync: set[str] = field(default_factory=set)  # members yet to send SyncGroup this generation
    offsets: dict[tuple[str, int], CommittedOffset] = field(default_factory=dict)
    rebalance_id: int = 0  # counts join phases; tags their timers so a stale one is ignored
    in_initial_delay: bool = False
    new_member_added: bool = False
    initial_delay_remaining_ms: int = 0

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def is_fenced(self, member_id: str, instance_id: str | None) -> bool:
        if instance_id is None:
            return False
        registered = self.static_members.get(instance_id)
        return registered is not None and registered != member_id

    def candidate_protocols(self, excluding: str | None = None) -> set[str] | None:
        """Protocols every member (but `excluding`) supports; None when there is no such member."""
        candidates = None
        for m in self.members.values():
            if m.member_id == excluding:
                continue
            names = set(m.protocol_names())
            candidates = names if candidates is None else candidates & names
        return candidates

    def supports(self, protocol_type: str, names: list[str], member_id: str | None = None) -> bool:
        if not protocol_type or not names:
            return False
        others = self.candidate_protocols(excluding=member_id)
        if others is None:
            return True
        return protocol_type == self.protocol_type and bool(others & set(names))

    def select_protocol(self) -> str:
        """The protocol all members support with the most first-choice votes; the leader's order breaks ties."""
        candidates = self.candidate_protocols() or set()
        votes: dict[str, int] = {}
        for m in self.members.values():
            choice = m.vote(candidates)
            votes[choice] = votes.get(choice, 0) + 1
        best = max(votes.values())
        leader = self.members.get(self.leader_id or "") or next(iter(self.members.values()))
        order = [n for n in leader.protocol_names() if n in votes] + sorted(votes)
        return next(name for name in order if votes.get(name) == best)

    def subscribed_topics(self) -> set[str] | None:
        """Topics the members subscribe to (consumer protocol); None when unknown."""
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE or self.protocol_name is None:
            return None
        topics: set[str] = set()
        for m in self.members.values():
            member_topics = parse_subscription_topics(m.metadata_for(self.protocol_name))
            if member_topics is None:
                return None
            topics |= member_topics
        return topics


def parse_subscription_topics(metadata: bytes) -> set[str] | None:
    """Topics of a consumer protocol subscription; None when it cannot be read."""
    try:
        _, subscription = decode_data(SUBSCRIPTION, metadata, newer_as_latest=True, short_as_older=True)
    except DecodeError:
        return None
    return set(subscription["topics"])


# ---------------------------------------------------------------- the coordinator


class GroupCoordinator:
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
        """Arm the periodic offset expiry check; call once, after `load`."""
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

    def _update_member_and_rebalance(self, group: Group, member: Member, token: Token, now: int, r: JoinRequest) -> None:
        if member.join_token is not None and member.join_token != token:
            self._reply(member.join_token, JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member.member_id))
        member.protocols = list(r.protocols)
        member.session_timeout_ms = r.session_timeout_ms
        member.rebalance_timeout_ms = r.rebalance_timeout_ms
        member.join_token = token
        self._maybe_prepare_rebalance(group, now, f"member {member.member_id} rejoined")
        self._maybe_complete_join(group, now)

    def _replace_static_member(self, group: Group, token: Token, now: int, r: JoinRequest, old_id: str, new_id: str) -> None:
        old = group.members.pop(old_id)
        # the old incarnation's parked requests are fenced
        if old.join_token is not None:
            self._reply(old.join_token, JoinResult(FENCED_INSTANCE_ID, old_id))
        if old.sync_token is not None:
            self._reply(old.sync_token, SyncResult(FENCED_INSTANCE_ID))
        protocols_unchanged = old.protocols == list(r.protocols) or (
            group.protocol_name is not None and old.metadata_for(group.protocol_name) == dict(r.protocols).get(group.protocol_name)
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
            members = [(m.member_id, m.group_instance_id, m.metadata_for(group.protocol_name)) for m in group.members.values()]
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
            self._timer(now + group.rebalance_timeout_ms(), TimerKey(TimerKind.JOIN, group.group_id, group.rebalance_id))
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
        if member.group_instance_id is not None and group.static_members.get(member.group_instance_id) == member.member_id:
            del group.static_members[member.group_instance_id]
        group.pending_sync.discard(member.member_id)
        if group.leader_id == member.member_id:
            group.leader_id = next(iter(group.members), None)

    def _member_gone(self, group: Group, now: int, reason: str) -> None:
        """After a member left or expired: the others must rebalance."""
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, now, reason)
        self._maybe_complete_join(group, now)

    def _touch(self, group: Group, member: Member, now: int) -> None:
        member.session_deadline_ms = now + member.session_timeout_ms
        self._timer(member.session_deadline_ms, TimerKey(TimerKind.SESSION, group.group_id, member.member_id))

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

    def timer_fired(self, key: TimerKey, now_ms: int) -> Effects:
        kind, group_id, subject = key
        if kind == TimerKind.RETENTION:
            self._expire_offsets(now_ms)
            self._timer(now_ms + self.config.offsets_retention_check_interval_ms, TimerKey(TimerKind.RETENTION))
            return self._done()
        group = self.groups.get(group_id)
        if group is not None:
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
        return self._done()

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

    # ------------------------------------------------------------ offsets

    def offset_commit(self, now_ms: int, r: OffsetCommitRequest) -> CommitPlan:
        keys = [(topic, partition) for topic, partition, *_ in r.offsets]
        plan = CommitPlan(r.group_id)
        code = self._commit_check(now_ms, r)
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

    def apply_commit(self, plan: CommitPlan, now_ms: int) -> None:
        """Make a persisted commit visible. The group is created for commits of assign() users."""
        if not plan.accepted or self.coordinator_error(plan.group_id) != NONE:
            return  # nothing accepted, or the group's partition was unloaded while the commit was persisted
        group = self.groups.get(plan.group_id)
        if group is None:
            group = self.groups[plan.group_id] = Group(plan.group_id, state_timestamp_ms=now_ms)
        group.offsets.update(plan.accepted)

    def offset_fetch(self, group_id: str, partitions: Iterable[tuple[str, int]] | None = None) -> list[tuple[str, int, CommittedOffset | None]]:
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

    # ------------------------------------------------------------ DescribeGroups, ListGroups, DeleteGroups

    def describe_group(self, group_id: str) -> GroupDescription:
        if (code := self.coordinator_error(group_id)) != NONE:
            return GroupDescription(group_id, "", "", "", [], error=code)
        group = self.groups.get(group_id)
        if group is None:
            return GroupDescription(group_id, GroupState.DEAD.value, "", "", [])
        stable = group.state == GroupState.STABLE
        members = [
            MemberDescription(
                m.member_id, m.group_instance_id, m.client_id, m.client_host,
                m.metadata_for(group.protocol_name) if stable else b"", m.assignment if stable else b"",
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

    # ------------------------------------------------------------ persistence

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

    def begin_loading(self, partition: int) -> None:
        """The partition is being read: its groups get COORDINATOR_LOAD_IN_PROGRESS until `load_partition`."""
        if partition not in self.loaded_partitions:
            self.loading_partitions.add(partition)

    def load_partition(self, partition: int, records: Iterable[tuple[bytes | None, bytes | None]],
                       now_ms: int) -> Effects:
        """Serve the groups of one `__consumer_offsets` partition, rebuilt from its records in log order.

        Groups with members come back Stable, and each member gets a fresh session timeout to reconnect
        in. Other partitions' groups are untouched; this partition's are replaced if it was loaded
        already. Records that cannot be decoded, or of groups that belong to another partition, are skipped.
        """
        self._drop_partition(partition)
        metadata: dict[str, rec.GroupValue | None] = {}
        offsets: dict[str, dict[tuple[str, int], CommittedOffset]] = {}
        for key, value in records:
            if key is None:
                continue
            try:
                k = rec.decode_key(key)
                if isinstance(k, rec.OffsetKey):
                    group_offsets = offsets.setdefault(k.group_id, {})
                    if value is None:
                        group_offsets.pop((k.topic, k.partition), None)
                    else:
                        v = rec.decode_offset_value(value)
                        group_offsets[(k.topic, k.partition)] = CommittedOffset(
                            v.offset, v.leader_epoch, v.metadata, v.commit_timestamp_ms)
                elif isinstance(k, rec.GroupKey):
                    metadata[k.group_id] = None if value is None else rec.decode_group_value(value)
            except DecodeError:
                continue
        for group_id in sorted(set(metadata) | set(offsets)):
            if self.partition_for(group_id) != partition:
                continue
            group = Group(group_id, state_timestamp_ms=now_ms, offsets=offsets.get(group_id, {}))
            value = metadata.get(group_id)
            if value is not None:
                self._restore_metadata(group, value, now_ms)
            if value is None and not group.offsets:
                continue
            self.groups[group_id] = group
        self.loading_partitions.discard(partition)
        self.loaded_partitions.add(partition)
        return self._done()

    def unload_partition(self, partition: int) -> Effects:
        """Stop serving one partition's groups (its leadership moved away): they are dropped from memory, not
        deleted; parked JoinGroup and SyncGroup requests get NOT_COORDINATOR; their timers are void."""
        self._drop_partition(partition)
        self.loaded_partitions.discard(partition)
        self.loading_partitions.discard(partition)
        return self._done()

    def _drop_partition(self, partition: int) -> None:
        for group in [g for g in self.groups.values() if self.partition_for(g.group_id) == partition]:
            for m in group.members.values():
                if m.join_token is not None:
                    self._reply(m.join_token, JoinResult(ErrorCode.NOT_COORDINATOR, m.member_id))
                if m.sync_token is not None:
                    self._reply(m.sync_token, SyncResult(ErrorCode.NOT_COORDINATOR))
            del self.groups[group.group_id]
            self._fx.cancel_group_timers.append(group.group_id)

    def _restore_metadata(self, group: Group, value: rec.GroupValue, now: int) -> None:
        group.protocol_type = value.protocol_type or None
        group.generation_id = value.generation_id
        group.protocol_name = value.protocol_name
        group.leader_id = value.leader_id
        if value.state_timestamp_ms >= 0:
            group.state_timestamp_ms = value.state_timestamp_ms
        for mv in value.members:
            protocols = [(value.protocol_name, mv.subscription)] if value.protocol_name is not None else []
            member = Member(mv.member_id, mv.group_instance_id, mv.client_id, mv.client_host,
                            mv.session_timeout_ms, mv.rebalance_timeout_ms, group.protocol_type or "",
                            protocols, assignment=mv.assignment)
            group.members[mv.member_id] = member
            if mv.group_instance_id is not None:
                group.static_members[mv.group_instance_id] = mv.member_id
            self._touch(group, member, now)
        group.state = GroupState.STABLE if group.members else GroupState.EMPTY
        if group.leader_id not in group.members:
            group.leader_id = next(iter(group.members), None)
