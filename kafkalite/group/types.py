"""The group coordinator's inputs, results and state: requests and their results, effects, timer keys,
members and groups."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Hashable, NamedTuple

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
