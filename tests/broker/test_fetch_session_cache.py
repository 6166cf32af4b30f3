"""The broker's fetch session cache (KIP-227) on an injected clock: what an incremental fetch reads and answers,
epochs, and which session makes room for which when the cache is full. (Side by side with Apache Kafka:
tests/differential/test_fetch_sessions.py.)"""

from __future__ import annotations

from kafkalite.broker.fetch_sessions import EVICTION_MS, FetchSessionCache
from kafkalite.clock import ManualClock
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.fetch_sessions import next_epoch


def part(index: int, offset: int = 0) -> dict:
    return {"partition": index, "current_leader_epoch": -1, "fetch_offset": offset, "last_fetched_epoch": -1,
            "log_start_offset": -1, "partition_max_bytes": 1 << 20}


def fetch(session_id: int, epoch: int, parts: dict[str, list[dict]], forgotten=None, follower: bool = False):
    return {"replica_id": 2 if follower else -1, "session_id": session_id, "session_epoch": epoch,
            "topics": [{"topic": t, "partitions": ps} for t, ps in parts.items()],
            "forgotten_topics_data": [{"topic": t, "partitions": ps} for t, ps in (forgotten or {}).items()]}


def answer_of(plan, high_watermarks: dict[tuple[str, int], int], records: frozenset = frozenset()):
    """Answer every partition the plan reads, as the Fetch handler would."""
    topics = [{"topic": t["topic"], "partitions": [
        {"partition_index": p["partition"], "error_code": 0, "log_start_offset": 0,
         "high_watermark": high_watermarks[(t["topic"], p["partition"])],
         "records": b"x" if (t["topic"], p["partition"]) in records else b""} for p in t["partitions"]]}
        for t in plan.topics]
    return plan.answer(topics)


def keys(topics) -> list[tuple[str, int]]:
    return [(t["topic"], p.get("partition", p.get("partition_index"))) for t in topics for p in t["partitions"]]


def opened(cache, parts, follower=False, hw=0) -> int:
    plan = cache.plan(fetch(0, 0, parts, follower=follower))
    session_id, _ = answer_of(plan, {key: hw for key in keys(plan.topics)})
    return session_id


def test_an_incremental_fetch_reads_every_session_partition_at_its_last_position_and_forgets():
    cache = FetchSessionCache(ManualClock().now_ms)
    session = opened(cache, {"a": [part(0), part(1)], "b": [part(0)]})
    assert session and len(cache) == 1
    plan = cache.plan(fetch(session, 1, {"a": [part(1, 5)]}, forgotten={"b": [0]}))
    assert plan.error == ErrorCode.NONE
    assert [(t["topic"], p["partition"], p["fetch_offset"]) for t in plan.topics for p in t["partitions"]] == [
        ("a", 0, 0), ("a", 1, 5)]
    # Only a partition with news is answered, and it moves to the end of the order (fairness under max_bytes).
    session_id, answered = answer_of(plan, {("a", 0): 0, ("a", 1): 0}, records=frozenset({("a", 0)}))
    assert session_id == session and keys(answered) == [("a", 0)]
    plan = cache.plan(fetch(session, 2, {}))
    assert keys(plan.topics) == [("a", 1), ("a", 0)]
    # A moved high watermark is news too; an unchanged one is not.
    _, answered = answer_of(plan, {("a", 0): 0, ("a", 1): 3})
    assert keys(answered) == [("a", 1)]
    _, answered = answer_of(cache.plan(fetch(session, 3, {})), {("a", 0): 0, ("a", 1): 3})
    assert answered == []


def test_epochs_must_follow_each_other_and_wrap_to_one():
    cache = FetchSessionCache(ManualClock().now_ms)
    session = opened(cache, {"a": [part(0)]})
    assert cache.plan(fetch(session, 2, {})).error == ErrorCode.INVALID_FETCH_SESSION_EPOCH
    assert cache.plan(fetch(session, 1, {})).error == ErrorCode.NONE
    assert cache.plan(fetch(session, 1, {})).error == ErrorCode.INVALID_FETCH_SESSION_EPOCH
    assert cache.plan(fetch(session + 1, 2, {})).error == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
    assert next_epoch(0x7FFFFFFF) == 1 and next_epoch(1) == 2


def test_closing_a_session_and_a_cache_of_no_slots():
    cache = FetchSessionCache(ManualClock().now_ms)
    session = opened(cache, {"a": [part(0)]})
    plan = cache.plan(fetch(session, -1, {"a": [part(0)]}))
    assert plan.session is None and keys(plan.topics) == [("a", 0)] and len(cache) == 0
    none = FetchSessionCache(ManualClock().now_ms, slots=0)
    assert opened(none, {"a": [part(0)]}) == 0 and len(none) == 0


def test_a_full_cache_makes_room_for_a_follower_a_larger_session_or_after_two_idle_minutes():
    clock = ManualClock()
    cache = FetchSessionCache(clock.now_ms, slots=2)
    small = opened(cache, {"a": [part(0)]})
    large = opened(cache, {"a": [part(0), part(1), part(2)]})
    assert small and large
    # Full of fresh sessions: a consumer's session no larger than the smallest gets none (full fetches go on).
    assert opened(cache, {"b": [part(0)]}) == 0
    # A larger one takes the smallest consumer's place.
    larger = opened(cache, {"b": [part(0), part(1)]})
    assert larger and cache.plan(fetch(small, 1, {})).error == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
    # A follower's session takes the smallest consumer's place whatever its size.
    follower = opened(cache, {"c": [part(0)]}, follower=True)
    assert follower and cache.plan(fetch(larger, 1, {})).error == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
    assert cache.plan(fetch(large, 1, {})).error == ErrorCode.NONE
    # Followers only (and fresh): a consumer's session gets no room.
    other_follower = opened(cache, {"d": [part(0)]}, follower=True)
    assert other_follower and opened(cache, {"e": [part(i) for i in range(9)]}) == 0
    # Two minutes unused: the least recently used session makes room, even a follower's.
    clock.advance(EVICTION_MS + 1)
    assert cache.plan(fetch(other_follower, 1, {})).error == ErrorCode.NONE  # used again: now the newest
    assert opened(cache, {"e": [part(0)]})
    assert cache.plan(fetch(follower, 1, {})).error == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
    assert cache.plan(fetch(other_follower, 2, {})).error == ErrorCode.NONE
