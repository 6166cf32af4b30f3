"""Drives the pure coordinator with a test clock: timers fire only when a test advances time."""

from __future__ import annotations

import itertools

from kafkalite.group import GroupConfig, GroupCoordinator, JoinRequest, OffsetCommitRequest, SyncRequest
from kafkalite.protocol.errors import ErrorCode


def subscription(*topics: str) -> bytes:
    """A consumer protocol subscription (version 0): int16 version, topics array, null user data."""
    out = bytearray(b"\x00\x00") + len(topics).to_bytes(4, "big")
    for t in topics:
        out += len(t).to_bytes(2, "big") + t.encode()
    return bytes(out + b"\xff\xff\xff\xff")


RANGE = [("range", subscription("t"))]
SESSION = 10_000
REBALANCE = 30_000


class Harness:
    def __init__(self, **config):
        config.setdefault("initial_rebalance_delay_ms", 0)
        ids = itertools.count(1)
        self.config = GroupConfig(**config)
        self.c = GroupCoordinator(self.config, new_uuid=lambda: f"u{next(ids)}")
        self.now = 0
        self.timers: dict[tuple, int] = {}
        self.replies: dict[int, object] = {}
        self.records: list[tuple[int, bytes, bytes | None]] = []
        self.events: list[str] = []
        self.tokens = itertools.count(1)
        self.issued: list[int] = []
        for partition in range(self.config.offsets_topic_num_partitions):  # standalone: every partition is ours
            self.apply(self.c.load_partition(partition, [], 0))

    # effects and time

    def apply(self, fx):
        void = set(fx.cancel_group_timers)
        self.timers = {key: deadline for key, deadline in self.timers.items() if key.group_id not in void}
        self.events.extend(fx.events)
        for deadline, key in fx.timers:
            self.timers[key] = deadline
        self.records.extend(fx.records)
        for token, result in fx.replies:
            assert token not in self.replies, f"token {token} answered twice"
            self.replies[token] = result
        return fx

    def advance(self, ms: int) -> None:
        target = self.now + ms
        while True:
            due = [(deadline, key) for key, deadline in self.timers.items() if deadline <= target]
            if not due:
                break
            deadline, key = min(due, key=lambda item: item[0])
            del self.timers[key]
            self.now = max(self.now, deadline)
            self.apply(self.c.timer_fired(key, self.now))
        self.now = target

    # requests

    def join(self, group="g", member_id="", *, protocols=RANGE, protocol_type="consumer", session=SESSION,
             rebalance=REBALANCE, instance=None, client="c", v4=True) -> int:
        token = next(self.tokens)
        self.issued.append(token)
        request = JoinRequest(group, member_id, session, rebalance, protocol_type, list(protocols), instance,
                              client, "/127.0.0.1", v4)
        self.apply(self.c.join_group(token, self.now, request))
        return token

    def join_new(self, group="g", **kw) -> tuple[str, int]:
        """A v4 member's two joins; returns its member id and the token of the parked (or answered) second join."""
        first = self.join(group, **kw)
        result = self.replies.get(first)
        if kw.get("instance") is not None:  # static members join at once; the id comes with the reply
            return (result.member_id if result else None), first
        if True:
            assert result.error == ErrorCode.MEMBER_ID_REQUIRED
            return result.member_id, self.join(group, result.member_id, **kw)

    def sync(self, group, member_id, generation, assignments=(), **kw) -> int:
        token = next(self.tokens)
        self.issued.append(token)
        self.apply(self.c.sync_group(token, self.now,
                                     SyncRequest(group, generation, member_id, list(assignments), **kw)))
        return token

    def heartbeat(self, group, member_id, generation, instance=None) -> int:
        code, fx = self.c.heartbeat(self.now, group, member_id, generation, instance)
        self.apply(fx)
        return code

    def leave(self, group, *members) -> tuple[int, list[int]]:
        code, codes, fx = self.c.leave_group(self.now, group,
                                             [m if isinstance(m, tuple) else (m, None) for m in members])
        self.apply(fx)
        return code, codes

    def commit(self, group, member_id, generation, offsets, instance=None):
        """offsets: {(topic, partition): offset}; returns {(topic, partition): error}. Persists, then applies."""
        rows = [(t, p, o, -1, "") for (t, p), o in offsets.items()]
        plan = self.c.offset_commit(self.now, OffsetCommitRequest(group, generation, member_id, rows, instance))
        self.apply(plan.effects)
        self.c.apply_commit(plan, self.now)
        return plan.errors

    def state(self, group="g") -> str:
        g = self.c.groups.get(group)
        return "Dead" if g is None else g.state.value

    def stable_group(self, group="g", n=1, **kw) -> tuple[list[str], int]:
        """n members joined and synced; returns (member ids, leader first) and the generation."""
        members, tokens = [], []
        for _ in range(n):
            member_id, token = self.join_new(group, **kw)
            members.append(member_id)
            tokens.append(token)
            # a newcomer rebalances a formed group: members already answered join again
            for j in range(len(members) - 1):
                if tokens[j] in self.replies and self.replies.get(token) is None:
                    tokens[j] = self.join(group, members[j], **kw)
        self.advance(self.config.initial_rebalance_delay_ms)
        results = [self.replies[t] for t in tokens]
        assert all(r.error == ErrorCode.NONE for r in results), results
        generation = results[0].generation_id
        leader = results[0].leader
        syncs = [self.sync(group, m, generation, [(x, x.encode()) for x in members] if m == leader else ())
                 for m in members]
        assert all(self.replies[s].error == ErrorCode.NONE for s in syncs)
        ordered = [leader] + [m for m in members if m != leader]
        return ordered, generation
