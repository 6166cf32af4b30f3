"""Incremental fetch sessions (KIP-227, Fetch v7+).

A fetcher that follows many partitions (a follower, a Java consumer) opens a session with a full fetch at
epoch 0; the broker remembers the partitions and their fetch positions, and from then on the fetcher sends,
at epochs 1, 2, ..., only the partitions whose position changed (and names those it no longer wants in
forgotten_topics_data), while the broker answers only the partitions that have something new: records, an
error, a moved high watermark or log start offset, a diverging epoch. Idle partitions then cost neither side
an encode or a decode on every round trip.

The request's (session_id, session_epoch): (0, -1) is a full fetch without a session; (0 or X, 0) a full fetch
that opens a new session (closing X); (X, -1) closes X and is a full fetch; (X, n > 0) is incremental and must
carry the epoch that follows the last one (INVALID_FETCH_SESSION_EPOCH otherwise, FETCH_SESSION_ID_NOT_FOUND
for an unknown X). The cache holds max.incremental.fetch.session.cache.slots sessions; when it is full, a new
one takes the place of a session unused for two minutes, else of the smallest consumer's session when the new
one is a follower's or larger, else none is opened (session_id 0: the fetcher goes on with full fetches).
"""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.fetch_sessions import FINAL_EPOCH, INITIAL_EPOCH, next_epoch

EVICTION_MS = 120_000  # Kafka's: a session unused this long may make room for a new one


@dataclass(slots=True)
class CachedPartition:
    request: dict  # the partition as the fetcher last sent it (fetch_offset, partition_max_bytes, ...)
    high_watermark: int = -1  # as last answered; -1 after an error, so the partition is answered again
    log_start_offset: int = -1


@dataclass(slots=True, eq=False)
class FetchSession:
    id: int
    follower: bool
    epoch: int = 1  # the epoch the next incremental fetch must carry
    last_used_ms: int = 0
    # in answer order: a partition that is answered moves to the end, so that under max_bytes the others are
    # served first next time (as in Kafka)
    partitions: dict[tuple[str, int], CachedPartition] = field(default_factory=dict)


class FetchPlan:
    """What one Fetch request reads (`topics`, in the request's shape) and how its answer is made (`answer`)."""

    __slots__ = ("topics", "session", "error", "_opening")

    def __init__(self, topics: list, session: FetchSession | None = None, error: ErrorCode = ErrorCode.NONE,
                 opening: "FetchSessionCache | None" = None):
        self.topics = topics
        self.session = session  # None: a full fetch without a session
        self.error = error
        self._opening = opening  # a full fetch opening `session`: the cache it goes into once answered

    def answer(self, response_topics: list) -> tuple[int, list]:
        """The response's session id and topics, from the answer of every partition read: for an
        incremental fetch only the partitions that have something new. Opens the session a full fetch asked
        for, remembering what was answered."""
        session = self.session
        if session is None:
            return 0, response_topics
        if self._opening is not None:
            if not self._opening.admit(session):
                return 0, response_topics
            for topic in response_topics:
                for resp in topic["partitions"]:
                    cached = session.partitions.get((topic["topic"], resp["partition_index"]))
                    if cached is not None:
                        _remember(cached, resp)
            return session.id, response_topics
        answered = []
        for topic in response_topics:
            name = topic["topic"]
            kept = [resp for resp in topic["partitions"] if _has_news(session, name, resp)]
            if kept:
                answered.append({"topic": name, "partitions": kept})
        return session.id, answered


def _remember(cached: CachedPartition, resp: dict) -> None:
    cached.high_watermark = -1 if resp["error_code"] else resp["high_watermark"]
    cached.log_start_offset = resp["log_start_offset"]


def _has_news(session: FetchSession, topic: str, resp: dict) -> bool:
    key = (topic, resp["partition_index"])
    cached = session.partitions.get(key)
    if cached is None:  # forgotten by a later request on the same session meanwhile
        return False
    news = (bool(resp["records"]) or resp["error_code"] != 0 or "diverging_epoch" in resp
            or cached.high_watermark != resp["high_watermark"] or cached.log_start_offset != resp["log_start_offset"])
    if news:
        _remember(cached, resp)
        session.partitions[key] = session.partitions.pop(key)  # to the end of the answer order
    return news


class FetchSessionCache:
    """The broker's fetch sessions, by id, least recently used first."""

    def __init__(self, now_ms: Callable[[], int], slots: int = 1000):
        self.now_ms = now_ms
        self.slots = slots
        self._sessions: OrderedDict[int, FetchSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def plan(self, request: dict) -> FetchPlan:
        """Resolve a Fetch request against the sessions; the plan's error, when set, is the whole answer."""
        session_id = request.get("session_id", 0)
        epoch = request.get("session_epoch", FINAL_EPOCH)
        follower = request.get("replica_id", -1) >= 0
        if epoch in (INITIAL_EPOCH, FINAL_EPOCH):
            if session_id:
                self._sessions.pop(session_id, None)
            if epoch == FINAL_EPOCH or self.slots <= 0:
                return FetchPlan(request["topics"])
            session = FetchSession(self._new_id(), follower, last_used_ms=self.now_ms())
            for topic in request["topics"]:
                for part in topic["partitions"]:
                    session.partitions[(topic["topic"], part["partition"])] = CachedPartition(part)
            return FetchPlan(request["topics"], session, opening=self)
        session = self._sessions.get(session_id)
        if session is None:
            return FetchPlan([], error=ErrorCode.FETCH_SESSION_ID_NOT_FOUND)
        if epoch != session.epoch:
            return FetchPlan([], error=ErrorCode.INVALID_FETCH_SESSION_EPOCH)
        session.epoch = next_epoch(epoch)
        session.last_used_ms = self.now_ms()
        self._sessions.move_to_end(session_id)
        partitions = session.partitions
        for topic in request["topics"]:
            name = topic["topic"]
            for part in topic["partitions"]:
                cached = partitions.get((name, part["partition"]))
                if cached is None:
                    partitions[(name, part["partition"])] = CachedPartition(part)
                else:
                    cached.request = part
        for topic in request.get("forgotten_topics_data") or ():
            for index in topic["partitions"]:
                partitions.pop((topic["topic"], index), None)
        by_topic: dict[str, list] = {}
        for (name, _), cached in partitions.items():
            by_topic.setdefault(name, []).append(cached.request)
        return FetchPlan([{"topic": name, "partitions": parts} for name, parts in by_topic.items()], session)

    def admit(self, session: FetchSession) -> bool:
        """Keep a new session if there is room, or room can be made; False when it is not kept."""
        if len(self._sessions) >= self.slots:
            victim = self._eviction_candidate(session)
            if victim is None:
                return False
            del self._sessions[victim.id]
        self._sessions[session.id] = session
        return True

    def _eviction_candidate(self, new: FetchSession) -> FetchSession | None:
        oldest = next(iter(self._sessions.values()))
        if self.now_ms() - oldest.last_used_ms > EVICTION_MS:
            return oldest
        consumers = [s for s in self._sessions.values() if not s.follower]
        if not consumers:
            return None
        smallest = min(consumers, key=lambda s: len(s.partitions))
        if new.follower or len(smallest.partitions) < len(new.partitions):
            return smallest
        return None

    def _new_id(self) -> int:
        while True:
            session_id = random.randint(1, 0x7FFFFFFF)
            if session_id not in self._sessions:
                return session_id
