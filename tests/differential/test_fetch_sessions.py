"""Incremental fetch sessions (KIP-227) side by side with Apache Kafka: opening one with a full fetch, incremental
fetches that answer only the partitions with news, a stale epoch, an unknown session, forgetting a partition, an
erroring partition in a session, and closing it."""

from __future__ import annotations

import time

from diff_harness import Pair, create_topic_body, leader_not_ready, normalize_response, produce_body, wait_for_topic
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.record_batch import build_batch

NOW = int(time.time() * 1000)
VERSION = 12


def normalize(side, answer):
    """Session ids are each broker's own: any session becomes "<session>", no session stays 0."""
    answer = normalize_response(side, answer)
    if answer.get("session_id"):
        answer["session_id"] = "<session>"
    return answer


def part(index: int, offset: int) -> dict:
    return {"partition": index, "current_leader_epoch": -1, "fetch_offset": offset, "last_fetched_epoch": -1,
            "log_start_offset": -1, "partition_max_bytes": 1 << 20}


def session_fetch(epoch: int, topics: dict[str, list[dict]], forgotten: dict[str, list[int]] | None = None,
                  session: str = "session"):
    """A Fetch body for each side, carrying the session id that side opened (side.vars[session])."""
    def body(side) -> dict:
        return {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20, "isolation_level": 0,
                "session_id": side.vars.get(session, 0), "session_epoch": epoch,
                "topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()],
                "forgotten_topics_data": [{"topic": t, "partitions": ps} for t, ps in (forgotten or {}).items()],
                "rack_id": ""}
    return body


def produce(pair: Pair, topic: str, index: int, value: bytes) -> None:
    answer = pair.same("Produce", 9, produce_body(topic, build_batch([(None, value)], timestamps=NOW), index),
                       retry_while=leader_not_ready)
    assert answer["responses"][0]["partition_responses"][0]["error_code"] == 0


def answered(answer: dict) -> dict[tuple[str, int], dict]:
    return {(t["topic"], p["partition_index"]): p for t in answer["responses"] for p in t["partitions"]}


def open_session(pair: Pair, topics: dict[str, list[dict]]) -> dict:
    answer = pair.same("Fetch", VERSION, session_fetch(0, topics), normalize=normalize)
    assert answer["session_id"] == "<session>"
    for side in pair.sides:
        side.vars["session"] = pair.last(side)["session_id"]
    return answer


def test_an_incremental_fetch_answers_only_the_partitions_with_news(pair, names):
    topic = names()
    assert pair.same("CreateTopics", 7, create_topic_body(topic, 3))["topics"][0]["error_code"] == 0
    for side in pair.sides:
        wait_for_topic(side, topic, 3)
    produce(pair, topic, 0, b"zero")
    produce(pair, topic, 1, b"one")

    full = open_session(pair, {topic: [part(0, 0), part(1, 0), part(2, 0)]})
    assert len(answered(full)) == 3

    # The positions move past what was read; nothing new: an empty answer.
    nothing = pair.same("Fetch", VERSION, session_fetch(1, {topic: [part(0, 1), part(1, 1)]}), normalize=normalize)
    assert nothing["error_code"] == 0 and answered(nothing) == {}

    # A record on partition 1 only: it alone is answered, the others kept in the session unsent.
    produce(pair, topic, 1, b"one more")
    news = pair.same("Fetch", VERSION, session_fetch(2, {}), normalize=normalize)
    assert list(answered(news)) == [(topic, 1)] and answered(news)[(topic, 1)]["high_watermark"] == 2

    # A repeated epoch is refused and changes nothing; the next epoch still works.
    stale = pair.same("Fetch", VERSION, session_fetch(2, {}), normalize=normalize)
    assert stale["error_code"] == ErrorCode.INVALID_FETCH_SESSION_EPOCH and stale["responses"] == []
    pair.same("Fetch", VERSION, session_fetch(3, {topic: [part(1, 2)]}), normalize=normalize)

    # A forgotten partition is no longer answered, even with news; a new one joins.
    produce(pair, topic, 0, b"zero more")
    produce(pair, topic, 1, b"one again")
    forgot = pair.same("Fetch", VERSION, session_fetch(4, {}, forgotten={topic: [1]}), normalize=normalize)
    assert list(answered(forgot)) == [(topic, 0)]

    # Closing: a full fetch without a session; the session is gone afterwards.
    closed = pair.same("Fetch", VERSION, session_fetch(-1, {topic: [part(0, 0)]}), normalize=normalize)
    assert closed["session_id"] == 0 and list(answered(closed)) == [(topic, 0)]
    gone = pair.same("Fetch", VERSION, session_fetch(5, {}), normalize=normalize)
    assert gone["error_code"] == ErrorCode.FETCH_SESSION_ID_NOT_FOUND


def test_a_session_with_an_unknown_partition_answers_its_error_every_time(pair, names):
    topic, missing = names(), names("missing")
    assert pair.same("CreateTopics", 7, create_topic_body(topic, 1))["topics"][0]["error_code"] == 0
    for side in pair.sides:
        wait_for_topic(side, topic, 1)
    open_session(pair, {topic: [part(0, 0)], missing: [part(0, 0)]})
    for epoch in (1, 2):
        again = pair.same("Fetch", VERSION, session_fetch(epoch, {}), normalize=normalize)
        assert list(answered(again)) == [(missing, 0)]
        assert answered(again)[(missing, 0)]["error_code"] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_an_unknown_session_and_an_incremental_fetch_without_one_are_refused(pair, names):
    topic = names()
    for side in pair.sides:
        side.vars["made-up"] = 123456789
    unknown = pair.same("Fetch", VERSION, session_fetch(1, {topic: [part(0, 0)]}, session="made-up"),
                        normalize=normalize)
    assert unknown["error_code"] == ErrorCode.FETCH_SESSION_ID_NOT_FOUND and unknown["responses"] == []
    without = pair.same("Fetch", VERSION, session_fetch(1, {topic: [part(0, 0)]}, session="none"),
                        normalize=normalize)
    assert without["error_code"] != 0


def test_a_new_full_fetch_on_a_session_replaces_it(pair, names):
    topic = names()
    assert pair.same("CreateTopics", 7, create_topic_body(topic, 1))["topics"][0]["error_code"] == 0
    for side in pair.sides:
        wait_for_topic(side, topic, 1)
    open_session(pair, {topic: [part(0, 0)]})
    old = {side.name: side.vars["session"] for side in pair.sides}
    reopened = pair.same("Fetch", VERSION, session_fetch(0, {topic: [part(0, 0)]}), normalize=normalize)
    assert reopened["session_id"] == "<session>"
    for side in pair.sides:
        side.vars["new"] = pair.last(side)["session_id"]
        side.vars["session"] = old[side.name]
    gone = pair.same("Fetch", VERSION, session_fetch(1, {}), normalize=normalize)
    assert gone["error_code"] == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
    live = pair.same("Fetch", VERSION, session_fetch(1, {}, session="new"), normalize=normalize)
    assert live["error_code"] == 0
