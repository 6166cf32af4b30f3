"""Longer exchanges side by side: acks, an idempotent producer's sequences (gap, duplicate, restart of the
sequence), auto-creation through Metadata, and a consumer group's whole life with two members."""

from __future__ import annotations

import threading
import time

from diff_harness import (
    Pair, Side, assert_equal, create_topic_body, fetch_body, join_group_body, list_offsets_body, metadata_body,
    normalize_response as normalize, offset_commit_body, offset_fetch_body, produce_body,
    produce_without_error_details, wait_for_topic,
)
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.record_batch import build_batch

NOW = int(time.time() * 1000)


def create(pair: Pair, topic: str, partitions: int = 1) -> None:
    assert pair.same("CreateTopics", 7, create_topic_body(topic, partitions))["topics"][0]["error_code"] == 0
    for side in pair.sides:
        wait_for_topic(side, topic, partitions)


def partition_answer(answer: dict) -> dict:
    return answer["responses"][0]["partition_responses"][0]


def test_acks(pair, names):
    topic = names()
    create(pair, topic)
    for acks in (1, -1):
        assert partition_answer(pair.same("Produce", 9, produce_body(topic, build_batch(
            [(None, b"acks %d" % acks)], timestamps=NOW), acks=acks)))["error_code"] == 0
    # acks=0: no answer at all; the record is there all the same.
    for side in pair.sides:
        side.send_frame(side.encode("Produce", 9, produce_body(topic, build_batch([(None, b"acks 0")], timestamps=NOW),
                                                               acks=0)))
    deadline = time.monotonic() + 10
    while pair.same("ListOffsets", 7, list_offsets_body(topic, -1))["topics"][0]["partitions"][0]["offset"] != 3:
        assert time.monotonic() < deadline, "the acks=0 record never arrived"
        time.sleep(0.02)
    fetched = pair.same("Fetch", 12, fetch_body(topic, 0))
    assert [r[3] for b in fetched["responses"][0]["partitions"][0]["records"] for r in b["records"]] == [
        b"acks 1", b"acks -1", b"acks 0"]


def test_idempotent_sequences(pair, names):
    topic = names()
    create(pair, topic)
    pair.same("InitProducerId", 4, {"transactional_id": None, "transaction_timeout_ms": 60000,
                                    "producer_id": -1, "producer_epoch": -1})
    for side in pair.sides:
        answer = pair.last(side)
        side.vars["pid"], side.vars["epoch"] = answer["producer_id"], answer["producer_epoch"]

    def produce(seq: int, *values: bytes, epoch_delta: int = 0) -> dict:
        return partition_answer(pair.same("Produce", 9, lambda side: produce_body(topic, build_batch(
            [(None, v) for v in values], timestamps=NOW, producer_id=side.vars["pid"],
            producer_epoch=side.vars["epoch"] + epoch_delta, base_sequence=seq)),
            normalize=produce_without_error_details))

    assert produce(0, b"a", b"b")["base_offset"] == 0
    assert produce(2, b"c")["base_offset"] == 2
    for seq, values, offset in ((0, (b"a", b"b"), 0), (2, (b"c",), 2)):
        # A duplicate: the original offset, nothing written. Kept difference (protocol.md): Kafka also fills in
        # log_append_time_ms with the original batch's timestamp, even for CreateTime; kafkalite leaves it -1.
        kafka, kafkalite = (partition_answer(a) for a in pair.both("Produce", 9, lambda side: produce_body(
            topic, build_batch([(None, v) for v in values], timestamps=NOW, producer_id=side.vars["pid"],
                               producer_epoch=side.vars["epoch"], base_sequence=seq))))
        assert (kafka["error_code"], kafka["base_offset"], kafka["log_append_time_ms"]) == (0, offset, NOW)
        assert (kafkalite["error_code"], kafkalite["base_offset"], kafkalite["log_append_time_ms"]) == (0, offset, -1)
    assert produce(5, b"gap")["error_code"] == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert produce(1, b"b")["error_code"] != 0  # overlaps a batch, but is not one
    assert produce(3, b"d")["base_offset"] == 3
    produce(0, b"new epoch", epoch_delta=1)  # a bumped epoch starts again at 0
    produce(0, b"old epoch", epoch_delta=0)  # the old epoch is fenced now
    fetched = pair.same("Fetch", 12, fetch_body(topic, 0))
    assert len(fetched["responses"][0]["partitions"][0]["records"]) >= 3


def test_metadata_auto_creation(pair, names):
    """Before v4 asking for a topic creates it; from v4 only with allow_auto_topic_creation. Kafka answers the
    first request UNKNOWN_TOPIC_OR_PARTITION or LEADER_NOT_AVAILABLE while it creates the topic; kafkalite
    creates it at once and answers with its metadata (protocol.md)."""
    for version, topic in ((1, names()), (4, names())):
        kafka, kafkalite = pair.both("Metadata", version, metadata_body([topic], auto_create=True))
        assert kafka["topics"][0]["error_code"] in (0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                                    ErrorCode.LEADER_NOT_AVAILABLE)
        assert kafkalite["topics"][0]["error_code"] == 0
        for side in pair.sides:
            wait_for_topic(side, topic, 1)
        pair.same("Metadata", version, metadata_body([topic], auto_create=True))
    unknown = names()
    pair.same("Metadata", 4, metadata_body([unknown], auto_create=False))
    assert pair.same("Metadata", 12, metadata_body([unknown]))["topics"][0]["error_code"] == \
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def join(side: Side, group: str, who: str) -> dict:
    """One member's JoinGroup v7 on this connection (v4+: told MEMBER_ID_REQUIRED first, then rejoins)."""
    answer = side.request("JoinGroup", 7, join_group_body(group, side.vars.get(who, "")))
    if answer["error_code"] == ErrorCode.MEMBER_ID_REQUIRED:
        side.vars[who] = answer["member_id"]
        answer = side.request("JoinGroup", 7, join_group_body(group, answer["member_id"]))
    side.vars[who], side.vars[who + ".generation"] = answer["member_id"], answer["generation_id"]
    return answer


def sync_body(group: str, who: str, assignments: dict[str, bytes]):
    return lambda side: {"group_id": group, "generation_id": side.vars[who + ".generation"],
                         "member_id": side.vars[who], "group_instance_id": None, "protocol_type": "consumer",
                         "protocol_name": "range",
                         "assignments": [{"member_id": side.vars[n], "assignment": a} for n, a in assignments.items()]}


def heartbeat_body(group: str, who: str):
    return lambda side: {"group_id": group, "generation_id": side.vars[who + ".generation"],
                         "member_id": side.vars[who], "group_instance_id": None}


def state_of(side: Side, group: str) -> str:
    return side.request("DescribeGroups", 5, {"groups": [group], "include_authorized_operations": False}
                        )["groups"][0]["group_state"]


def test_group_with_two_members(pair, names):
    """A consumer group's life as two consumers live it: the first joins alone and is Stable; the second's join
    (a long poll on its own connection) starts a rebalance that the first learns of from its heartbeat; the first
    rejoins, both sync, commit, leave one after the other; the group is deleted."""
    topic, group = names(), names("g")
    create(pair, topic, partitions=2)
    describe = {"groups": [group], "include_authorized_operations": False}
    pair.same("JoinGroup", 7, lambda side: join_group_body(group, ""))
    for side in pair.sides:
        side.vars["first"] = pair.last(side)["member_id"]
    first = pair.same("JoinGroup", 7, lambda side: join_group_body(group, side.vars["first"]))
    assert (first["error_code"], first["generation_id"], first["leader"]) == (0, 1, "<member-1>")
    for side in pair.sides:
        side.vars["first.generation"] = 1
    pair.same("SyncGroup", 5, sync_body(group, "first", {"first": b"both partitions"}))
    assert pair.same("DescribeGroups", 5, describe)["groups"][0]["group_state"] == "Stable"

    answers = {}
    for side in pair.sides:
        second = Side(side.name, side.port, timeout=30.0, node_id=side.node_id, aliases=side.aliases, vars=side.vars)
        joined = {}
        thread = threading.Thread(target=lambda: joined.update(answer=join(second, group, "second")))
        thread.start()
        deadline = time.monotonic() + 20
        while state_of(side, group) != "PreparingRebalance":
            assert time.monotonic() < deadline, f"{side.name}: the second member's join started no rebalance"
            time.sleep(0.02)
        heartbeat = side.request("Heartbeat", 4, heartbeat_body(group, "first")(side))
        rejoined = join(side, group, "first")
        thread.join(30)
        second.close()
        assert "answer" in joined, f"{side.name}: the second member's JoinGroup never answered"
        answers[side.name] = [normalize(side, a) for a in (heartbeat, rejoined, joined["answer"])]
    assert_equal("heartbeat, the first member's rejoin, the second's join", answers["kafka"], answers["kafkalite"])
    heartbeat, rejoined, second = answers["kafka"]
    assert heartbeat["error_code"] == ErrorCode.REBALANCE_IN_PROGRESS
    assert (rejoined["generation_id"], second["generation_id"]) == (2, 2)
    assert sorted(len(a["members"]) for a in (rejoined, second)) == [0, 2]  # only the leader learns the members

    leader = "first" if rejoined["members"] else "second"
    follower = "second" if leader == "first" else "first"
    pair.same("SyncGroup", 5, sync_body(group, leader, {"first": b"partition 0", "second": b"partition 1"}))
    assert pair.same("SyncGroup", 5, sync_body(group, follower, {}))["assignment"] == \
        (b"partition 1" if follower == "second" else b"partition 0")
    assert pair.same("DescribeGroups", 5, describe)["groups"][0]["group_state"] == "Stable"

    pair.same("OffsetCommit", 8, lambda side: offset_commit_body(
        group, topic, {0: 4, 1: 9}, side.vars["first.generation"], side.vars["first"]))
    pair.same("OffsetFetch", 8, offset_fetch_body(group, topic, (0, 1)))
    pair.same("Heartbeat", 4, heartbeat_body(group, "second"))
    pair.same("LeaveGroup", 4, lambda side: {"group_id": group, "members": [
        {"member_id": side.vars["second"], "group_instance_id": None}]})
    assert pair.same("Heartbeat", 4, heartbeat_body(group, "first"))["error_code"] == ErrorCode.REBALANCE_IN_PROGRESS
    # While the group rebalances, its members are described with their last assignment (as by Kafka 4).
    rebalancing = pair.same("DescribeGroups", 5, describe)["groups"][0]
    assert rebalancing["group_state"] == "PreparingRebalance"
    assert rebalancing["members"][0]["member_assignment"] == b"partition 0"
    pair.same("LeaveGroup", 4, lambda side: {"group_id": group, "members": [
        {"member_id": side.vars["first"], "group_instance_id": None}]})
    assert pair.same("DescribeGroups", 5, describe)["groups"][0]["group_state"] == "Empty"
    pair.same("OffsetFetch", 8, offset_fetch_body(group, topic, (0, 1)))  # kept while the group is Empty
    assert pair.same("DeleteGroups", 2, {"groups_names": [group]})["results"][0]["error_code"] == 0
    assert pair.same("DescribeGroups", 5, describe)["groups"][0]["group_state"] == "Dead"
    pair.same("OffsetFetch", 8, offset_fetch_body(group, topic, (0, 1)))  # gone with the group
