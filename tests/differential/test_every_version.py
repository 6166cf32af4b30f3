"""Every API kafkalite advertises, at every version both brokers support: a short exchange whose answers
(error codes, offsets, watermarks, configs, group states) must be the same from Apache Kafka and kafkalite."""

from __future__ import annotations

import time

import pytest

from diff_harness import (
    CLOSED, Pair, Side, add_partitions_body, concurrent, create_topic_body, describe_configs_body, end_txn_body,
    fetch_body, init_transactional, join_group_body, leader_not_ready, list_offsets_body, metadata_body,
    normalize_response, offset_commit_body, offset_fetch_body, produce_body, read_committed, stable_at, txn_body,
    txn_offset_commit_body, txn_produce_body, wait_for_topic,
)
from diff_txn_scenarios import TXN_SCENARIOS
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.messages import APIS
from kafkalite.protocol.record_batch import build_batch

TOPIC_RESOURCE, BROKER_RESOURCE = 2, 4
NOW = int(time.time() * 1000)

# APIs kafkalite advertises from a lower version than it serves (Produce v0-2: see protocol.md). Kafka 4 does
# the same for Produce, so the versions compared start at the served minimum.
SERVED_MIN = {api.key: api.min_version for api in APIS.values()}


def api_ranges(side) -> dict[int, tuple[int, int]]:
    answer = side.request("ApiVersions", 3, {"client_software_name": "diff", "client_software_version": "1"})
    assert answer != CLOSED and answer["error_code"] == 0
    return {k["api_key"]: (k["min_version"], k["max_version"]) for k in answer["api_keys"]}


@pytest.fixture(scope="module")
def common_versions(kafka, kafkalite) -> dict[int, range]:
    """API key -> the versions kafkalite advertises (and serves) that Kafka also supports."""
    kafka_ranges, lite_ranges = api_ranges(Side("kafka", kafka.port)), api_ranges(Side("kafkalite", kafkalite.port))
    common = {}
    for key, (low, high) in lite_ranges.items():
        if key in kafka_ranges:
            k_low, k_high = kafka_ranges[key]
            common[key] = range(max(low, k_low, SERVED_MIN[key]), min(high, k_high) + 1)
    return common


def test_kafka_supports_every_version_kafkalite_advertises(kafka, kafkalite):
    """kafkalite advertises nothing Apache Kafka 4 would not answer: a client negotiates the same versions."""
    kafka_ranges, lite_ranges = api_ranges(Side("kafka", kafka.port)), api_ranges(Side("kafkalite", kafkalite.port))
    outside = {key: (lite, kafka_ranges.get(key)) for key, lite in lite_ranges.items()
               if key not in kafka_ranges or lite[0] < kafka_ranges[key][0] or lite[1] > kafka_ranges[key][1]}
    assert outside == {}


def batch(*values: bytes, timestamp: int = NOW, **producer) -> bytes:
    return build_batch([(b"k%d" % i, v) for i, v in enumerate(values)], timestamps=timestamp, **producer)


def create(pair: Pair, topic: str, partitions: int = 1, **configs) -> None:
    answer = pair.same("CreateTopics", 7, create_topic_body(topic, partitions, configs))
    assert answer["topics"][0]["error_code"] == 0
    settle(pair, topic, partitions)


def settle(pair: Pair, topic: str, partitions: int | None) -> None:
    for side in pair.sides:
        wait_for_topic(side, topic, partitions)


def produce(pair: Pair, topic: str, records: bytes, version: int = 9, partition: int = 0) -> dict:
    answer = pair.same("Produce", version, produce_body(topic, records, partition))
    return answer["responses"][0]["partition_responses"][0]


def join(pair: Pair, version: int, group: str, who: str = "member") -> dict:
    """A single member joins (v4+: first told MEMBER_ID_REQUIRED, then rejoins with its id); each side's member
    id and generation are kept in side.vars[who] and side.vars[who + '.generation']."""
    for side in pair.sides:  # a member id belongs to one group: in another group (the next version's) join anew
        if side.vars.get(who + ".group") != group:
            side.vars.pop(who, None)
        side.vars[who + ".group"] = group
    body = lambda side: join_group_body(group, side.vars.get(who, ""))  # noqa: E731
    answer = pair.same("JoinGroup", version, body)
    if answer["error_code"] == ErrorCode.MEMBER_ID_REQUIRED:
        for side in pair.sides:
            side.vars[who] = pair.last(side)["member_id"]
        answer = pair.same("JoinGroup", version, body)
    for side in pair.sides:
        side.vars[who] = pair.last(side)["member_id"]
        side.vars[who + ".generation"] = pair.last(side)["generation_id"]
    return answer


def sync(pair: Pair, version: int, group: str, assignment: bytes = b"\x00\x00assigned", who: str = "member"):
    return pair.same("SyncGroup", version, lambda side: {
        "group_id": group, "generation_id": side.vars[who + ".generation"], "member_id": side.vars[who],
        "group_instance_id": None, "protocol_type": "consumer", "protocol_name": "range",
        "assignments": [{"member_id": side.vars[who], "assignment": assignment}]})


def member_body(group: str, who: str = "member"):
    return lambda side: {"group_id": group, "generation_id": side.vars[who + ".generation"],
                         "member_id": side.vars[who], "group_instance_id": None}


def leave_body(group: str, who: str = "member"):
    return lambda side: {"group_id": group, "member_id": side.vars[who],
                         "members": [{"member_id": side.vars[who], "group_instance_id": None}]}


# ---------------------------------------------------------------- one scenario per API, run at one version


def scenario_produce(pair, v, names):
    topic = names()
    create(pair, topic)
    assert produce(pair, topic, batch(b"a", b"b"), v)["base_offset"] == 0
    assert produce(pair, topic, batch(b"c"), v)["base_offset"] == 2
    pair.same("Produce", v, produce_body(names("unknown"), batch(b"x"), acks=1))  # Produce creates no topic


def scenario_fetch(pair, v, names):
    topic = names()
    create(pair, topic)
    produce(pair, topic, batch(b"a", b"b"))
    produce(pair, topic, batch(b"c"))
    for offset in (0, 2, 3, 4, -1):
        pair.same("Fetch", v, fetch_body(topic, offset))
    pair.same("Fetch", v, fetch_body(topic, 0, partition=7))


def scenario_list_offsets(pair, v, names):
    topic = names()
    create(pair, topic)
    specials = [-2, -1] + ([-3] if v >= 7 else [])
    for timestamp in specials + [0]:  # an empty partition
        pair.same("ListOffsets", v, list_offsets_body(topic, timestamp))
    produce(pair, topic, batch(b"a", b"b", timestamp=NOW - 1000))
    produce(pair, topic, batch(b"c", timestamp=NOW))
    for timestamp in specials + [0, NOW - 1000, NOW - 500, NOW, NOW + 1]:
        pair.same("ListOffsets", v, list_offsets_body(topic, timestamp))
    pair.same("ListOffsets", v, list_offsets_body(topic, -1, partitions=(0, 3)))
    pair.same("ListOffsets", v, list_offsets_body(names("unknown"), -1))


def scenario_metadata(pair, v, names):
    topic = names()
    create(pair, topic, partitions=3)
    pair.same("Metadata", v, metadata_body([topic]))
    pair.same("Metadata", v, metadata_body([]))
    if v >= 4:  # before v4 asking for a topic creates it
        pair.same("Metadata", v, metadata_body([topic, names("unknown")], auto_create=False))


def scenario_create_topics(pair, v, names):
    topic = names()
    pair.same("CreateTopics", v, create_topic_body(topic, 2, validate_only=True))
    pair.same("CreateTopics", v, create_topic_body(topic, 2, {"retention.ms": "1000"}))
    pair.same("CreateTopics", v, create_topic_body(topic, 2))  # exists
    pair.same("CreateTopics", v, create_topic_body(names(), 0))
    pair.same("CreateTopics", v, create_topic_body(names(), -1, replication_factor=-1))  # broker defaults
    pair.same("CreateTopics", v, create_topic_body(names(), 1, replication_factor=3))
    pair.same("CreateTopics", v, create_topic_body(names(), 1, {"no.such.config": "1"}))
    pair.same("CreateTopics", v, create_topic_body(names(), 1, {"retention.ms": "soon"}))
    pair.same("CreateTopics", v, create_topic_body("bad/name", 1))
    settle(pair, topic, 2)
    pair.same("Metadata", 12, metadata_body([topic]))


def scenario_delete_topics(pair, v, names):
    topic = names()
    create(pair, topic)
    body = lambda name: {"topics": [{"name": name}], "topic_names": [name], "timeout_ms": 30000}  # noqa: E731
    pair.same("DeleteTopics", v, body(topic))
    settle(pair, topic, None)
    pair.same("DeleteTopics", v, body(topic))  # already gone
    pair.same("Metadata", 12, metadata_body([topic]))


def scenario_create_partitions(pair, v, names):
    topic = names()
    create(pair, topic)
    body = lambda count, validate=False, name=topic: {  # noqa: E731
        "topics": [{"name": name, "count": count, "assignments": None}], "timeout_ms": 30000,
        "validate_only": validate}
    pair.same("CreatePartitions", v, body(3, validate=True))
    pair.same("CreatePartitions", v, body(3))
    settle(pair, topic, 3)
    pair.same("CreatePartitions", v, body(3))  # not a growth
    pair.same("CreatePartitions", v, body(2))
    pair.same("CreatePartitions", v, body(2, name=names("unknown")))
    settle(pair, topic, 3)
    pair.same("Metadata", 12, metadata_body([topic]))


def scenario_delete_records(pair, v, names):
    topic = names()
    create(pair, topic)
    produce(pair, topic, batch(b"a", b"b", b"c"))
    body = lambda offset, partition=0: {"topics": [{"name": topic, "partitions": [  # noqa: E731
        {"partition_index": partition, "offset": offset}]}], "timeout_ms": 30000}
    for offset in (1, 1, 0, 3, 4, -1):
        pair.same("DeleteRecords", v, body(offset))
    pair.same("DeleteRecords", v, body(0, partition=5))
    pair.same("ListOffsets", 7, list_offsets_body(topic, -2))
    pair.same("Fetch", 12, fetch_body(topic, 0))


def scenario_describe_configs(pair, v, names):
    # Whole-resource comparisons are in test_configs.py; here: named keys, errors, and the version's shape.
    topic = names()
    create(pair, topic, **{"retention.ms": "12345"})
    keys = ["retention.ms", "cleanup.policy", "max.message.bytes", "segment.bytes", "no.such.config"]
    pair.same("DescribeConfigs", v, describe_configs_body(TOPIC_RESOURCE, topic, keys, synonyms=v >= 1))
    pair.same("DescribeConfigs", v, describe_configs_body(TOPIC_RESOURCE, names("unknown"), keys))
    pair.same("DescribeConfigs", v, describe_configs_body(BROKER_RESOURCE, "12345", ["num.partitions"]))


def scenario_alter_configs(pair, v, names):
    topic = names()
    create(pair, topic, **{"retention.ms": "12345"})
    body = lambda configs, validate=False, name=topic: {"resources": [{  # noqa: E731
        "resource_type": TOPIC_RESOURCE, "resource_name": name,
        "configs": [{"name": k, "value": val} for k, val in configs.items()]}], "validate_only": validate}
    pair.same("AlterConfigs", v, body({"segment.bytes": "1048576"}, validate=True))
    pair.same("AlterConfigs", v, body({"segment.bytes": "1048576"}))  # replaces every override
    pair.same("AlterConfigs", v, body({"segment.bytes": "a lot"}))
    pair.same("AlterConfigs", v, body({"no.such.config": "1"}))
    pair.same("AlterConfigs", v, body({"retention.ms": "1"}, name=names("unknown")))
    pair.same("DescribeConfigs", 4, describe_configs_body(TOPIC_RESOURCE, topic, ["retention.ms", "segment.bytes"]))


def scenario_incremental_alter_configs(pair, v, names):
    topic = names()
    create(pair, topic, **{"retention.ms": "12345"})
    SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
    body = lambda ops, name=topic: {"resources": [{  # noqa: E731
        "resource_type": TOPIC_RESOURCE, "resource_name": name,
        "configs": [{"name": k, "config_operation": op, "value": val} for k, op, val in ops]}],
        "validate_only": False}
    pair.same("IncrementalAlterConfigs", v, body([("segment.bytes", SET, "1048576")]))
    pair.same("IncrementalAlterConfigs", v, body([("retention.ms", DELETE, None)]))
    pair.same("IncrementalAlterConfigs", v, body([("cleanup.policy", APPEND, "compact")]))
    pair.same("IncrementalAlterConfigs", v, body([("cleanup.policy", SUBTRACT, "delete")]))
    pair.same("IncrementalAlterConfigs", v, body([("segment.bytes", APPEND, "1")]))  # not a list
    pair.same("IncrementalAlterConfigs", v, body([("no.such.config", SET, "1")]))
    pair.same("IncrementalAlterConfigs", v, body([("segment.bytes", SET, "x")]))
    pair.same("IncrementalAlterConfigs", v, body([("retention.ms", SET, "1")], name=names("unknown")))
    pair.same("DescribeConfigs", 4, describe_configs_body(
        TOPIC_RESOURCE, topic, ["retention.ms", "segment.bytes", "cleanup.policy"]))


def scenario_init_producer_id(pair, v, names):
    body = lambda tid, timeout_ms=60000: {"transactional_id": tid, "transaction_timeout_ms": timeout_ms,  # noqa: E731
                                          "producer_id": -1, "producer_epoch": -1}
    pair.same("InitProducerId", v, body(None))
    tid = names("txn")
    pair.same("InitProducerId", v, body(tid))  # a new transactional id: epoch 0
    pair.same("InitProducerId", v, body(tid))  # again: the next epoch
    pair.same("InitProducerId", v, body(names("txn"), timeout_ms=900001))  # above transaction.max.timeout.ms
    pair.same("InitProducerId", v, body(names("txn"), timeout_ms=0))
    pair.same("InitProducerId", v, body(""))


def scenario_offset_for_leader_epoch(pair, v, names):
    topic = names()
    create(pair, topic)
    produce(pair, topic, batch(b"a", b"b"))
    body = lambda epoch, partition=0, name=topic: {"replica_id": -1, "topics": [{"topic": name, "partitions": [  # noqa: E731
        {"partition": partition, "current_leader_epoch": -1, "leader_epoch": epoch}]}]}
    for epoch in (0, 1, 5):
        pair.same("OffsetForLeaderEpoch", v, body(epoch))
    pair.same("OffsetForLeaderEpoch", v, body(0, partition=4))
    pair.same("OffsetForLeaderEpoch", v, body(0, name=names("unknown")))


def scenario_describe_cluster(pair, v, names):
    pair.same("DescribeCluster", v, {"include_cluster_authorized_operations": False, "endpoint_type": 1})


def scenario_find_coordinator(pair, v, names):
    group = names("g")
    pair.same("FindCoordinator", v, {"key": group, "key_type": 0, "coordinator_keys": [group, names("g")]})


def scenario_join_group(pair, v, names):
    group = names("g")
    join(pair, v, group)
    join(pair, v, group)  # a rejoin of a known member
    pair.same("JoinGroup", v, join_group_body(group, "not-a-member"))
    pair.same("JoinGroup", v, join_group_body(group, "", protocols=(("roundrobin", b"x"),)))
    pair.same("JoinGroup", v, join_group_body(names("g"), "", session_timeout_ms=10))


def scenario_sync_group(pair, v, names):
    group = names("g")
    join(pair, 7, group)
    sync(pair, v, group)
    pair.same("SyncGroup", v, lambda side: {
        "group_id": group, "generation_id": side.vars["member.generation"] + 1, "member_id": side.vars["member"],
        "group_instance_id": None, "protocol_type": "consumer", "protocol_name": "range", "assignments": []})
    pair.same("SyncGroup", v, {"group_id": group, "generation_id": 1, "member_id": "nobody",
                               "group_instance_id": None, "protocol_type": "consumer", "protocol_name": "range",
                               "assignments": []})


def scenario_heartbeat(pair, v, names):
    group = names("g")
    join(pair, 7, group)
    pair.same("Heartbeat", v, member_body(group))  # before SyncGroup: still rebalancing for the member
    sync(pair, 5, group)
    pair.same("Heartbeat", v, member_body(group))
    pair.same("Heartbeat", v, lambda side: member_body(group)(side) | {"generation_id": 99})
    pair.same("Heartbeat", v, lambda side: member_body(group)(side) | {"member_id": "nobody"})
    pair.same("Heartbeat", v, lambda side: member_body(names("g"))(side))


def scenario_leave_group(pair, v, names):
    group = names("g")
    join(pair, 7, group)
    sync(pair, 5, group)
    pair.same("LeaveGroup", v, leave_body(group))
    pair.same("LeaveGroup", v, leave_body(group))  # gone already
    pair.same("DescribeGroups", 5, {"groups": [group], "include_authorized_operations": False})


def scenario_offset_commit(pair, v, names):
    topic, group = names(), names("g")
    create(pair, topic, partitions=2)
    pair.same("OffsetCommit", v, offset_commit_body(group, topic, {0: 5, 1: 7}))  # a simple (group-less) commit
    pair.same("OffsetCommit", v, offset_commit_body(group, names("unknown"), {0: 1}))
    pair.same("OffsetFetch", 8, offset_fetch_body(group, topic, (0, 1)))
    joined = names("g")
    join(pair, 7, joined)
    sync(pair, 5, joined)
    pair.same("OffsetCommit", v, lambda side: offset_commit_body(
        joined, topic, {0: 3}, side.vars["member.generation"], side.vars["member"]))
    pair.same("OffsetCommit", v, lambda side: offset_commit_body(
        joined, topic, {0: 3}, side.vars["member.generation"] + 1, side.vars["member"]))
    pair.same("OffsetCommit", v, offset_commit_body(joined, topic, {0: 3}, 1, "nobody"))
    pair.same("OffsetFetch", 8, offset_fetch_body(joined, topic, (0, 1)))


def scenario_offset_fetch(pair, v, names):
    topic, group = names(), names("g")
    create(pair, topic, partitions=2)
    pair.same("OffsetCommit", 8, offset_commit_body(group, topic, {0: 5}))
    pair.same("OffsetFetch", v, offset_fetch_body(group, topic, (0, 1, 9)))
    pair.same("OffsetFetch", v, offset_fetch_body(names("g"), topic, (0,)))
    pair.same("OffsetFetch", v, offset_fetch_body(group, names("unknown"), (0,)))
    if v >= 2:  # null topics: every committed offset of the group
        pair.same("OffsetFetch", v, offset_fetch_body(group, None))


def scenario_describe_groups(pair, v, names):
    group = names("g")
    join(pair, 7, group)
    body = {"groups": [group, names("g")], "include_authorized_operations": False}
    # Kafka 4's coordinator answers reads from its last committed state, and a join writes nothing: a group that
    # is only joined shows as Dead there until some write to its __consumer_offsets partition (another test's
    # group) commits, so that answer depends on the run. Here kafkalite's answer alone is checked.
    _, kafkalite = pair.sides
    joined = kafkalite.request("DescribeGroups", v, body)["groups"][0]
    assert (joined["group_state"], len(joined["members"])) == ("CompletingRebalance", 1), joined
    sync(pair, 5, group)
    pair.same("DescribeGroups", v, body)  # Stable, with the assignment
    pair.same("LeaveGroup", 4, leave_body(group))
    pair.same("DescribeGroups", v, body)  # Empty


def scenario_list_groups(pair, v, names):
    groups = [names("g"), names("g")]
    join(pair, 7, groups[0])
    sync(pair, 5, groups[0])
    pair.same("OffsetCommit", 8, offset_commit_body(groups[1], names(), {0: 1}))  # an Empty group of offsets only
    ours = lambda side, answer: {  # noqa: E731  the groups this test made; other tests' groups are theirs
        **answer, "groups": [g for g in answer["groups"] if g["group_id"] in groups]}
    normalize = lambda side, answer: normalize_response(side, ours(side, answer))  # noqa: E731
    for states in ([], ["Stable"], ["Empty"], ["Dead"]):
        pair.same("ListGroups", v, {"states_filter": states}, normalize=normalize)


def scenario_delete_groups(pair, v, names):
    topic, groups = names(), [names("g"), names("g"), names("g")]
    create(pair, topic)
    pair.same("OffsetCommit", 8, offset_commit_body(groups[0], topic, {0: 1}))
    join(pair, 7, groups[1])
    pair.same("DeleteGroups", v, {"groups_names": groups})  # Empty, with a member, unknown
    pair.same("OffsetFetch", 8, offset_fetch_body(groups[0], topic))


def scenario_offset_delete(pair, v, names):
    topic, group = names(), names("g")
    create(pair, topic, partitions=2)
    pair.same("OffsetCommit", 8, offset_commit_body(group, topic, {0: 1, 1: 2}))
    body = lambda group, topic, partitions: {"group_id": group, "topics": [  # noqa: E731
        {"name": topic, "partitions": [{"partition_index": p} for p in partitions]}]}
    pair.same("OffsetDelete", v, body(group, topic, [0]))
    pair.same("OffsetFetch", 8, offset_fetch_body(group, topic, (0, 1)))
    pair.same("OffsetDelete", v, body(names("g"), topic, [0]))
    unknown = pair.same("OffsetDelete", v, body(group, names("unknown"), [0]))  # a topic that does not exist
    assert unknown["topics"][0]["partitions"][0]["error_code"] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    pair.same("OffsetDelete", v, body(group, topic, [1, 7]))  # a partition that does not exist, beside one that does
    joined = names("g")
    join(pair, 7, joined)
    sync(pair, 5, joined)
    pair.same("OffsetCommit", 8, lambda side: offset_commit_body(
        joined, topic, {0: 3}, side.vars["member.generation"], side.vars["member"]))
    pair.same("OffsetDelete", v, body(joined, topic, [0]))  # a Stable group whose member subscribes to no topic


def scenario_write_txn_markers(pair, v, names):
    """Broker to broker, but any client may send it (there are no ACLs): markers for partitions the broker does
    not have, a marker of a producer with no open transaction (appended all the same), one of an older epoch."""
    topic = names()
    create(pair, topic, partitions=2)
    body = lambda topics, producer_id=1, epoch=0, commit=True: {"markers": [  # noqa: E731
        {"producer_id": producer_id, "producer_epoch": epoch, "transaction_result": commit, "coordinator_epoch": 0,
         "topics": [{"name": name, "partition_indexes": indexes} for name, indexes in topics.items()]}]}
    pair.same("WriteTxnMarkers", v, body({names("unknown"): [0]}))
    pair.same("WriteTxnMarkers", v, body({topic: [0, 7]}))  # one partition that does not exist
    pair.same("WriteTxnMarkers", v, body({topic: [1]}, producer_id=5, epoch=3, commit=False))  # no transaction open
    pair.same("ListOffsets", 7, list_offsets_body(topic, -1, partitions=(0, 1)))  # each marker took an offset
    pair.same("WriteTxnMarkers", v, body({topic: [1]}, producer_id=5, epoch=2))  # older than the producer's epoch


def scenario_api_versions(pair, v, names):
    # The ranges differ by design (test_kafka_supports_every_version_kafkalite_advertises compares them).
    answers = pair.both("ApiVersions", v, {"client_software_name": "diff", "client_software_version": "1.0"})
    assert [a["error_code"] for a in answers] == [0, 0]


def scenario_elect_leaders(pair, v, names):
    topic = names()
    create(pair, topic, 2)
    body = lambda parts, election=0: {"election_type": election, "timeout_ms": 10000,  # noqa: E731
                                      "topic_partitions": parts}
    pair.same("ElectLeaders", v, body([{"topic": topic, "partitions": [0, 1]}]))  # already preferred: not needed
    pair.same("ElectLeaders", v, body([{"topic": names("unknown"), "partitions": [0]}]))
    if v >= 1:
        pair.same("ElectLeaders", v, body([{"topic": topic, "partitions": [1]}], election=1))


def scenario_alter_partition_reassignments(pair, v, names):
    topic = names()
    create(pair, topic)
    def body(name, here=True, cancel=False):  # each side's own node id: the partition's only replica
        return lambda side: {"timeout_ms": 10000, "topics": [{"name": name, "partitions": [
            {"partition_index": 0, "replicas": None if cancel else [side.node_id if here else side.node_id + 7]}]}]}

    pair.same("AlterPartitionReassignments", v, body(topic))  # where it already is
    pair.same("AlterPartitionReassignments", v, body(topic, cancel=True))  # nothing to cancel
    pair.same("AlterPartitionReassignments", v, body(topic, here=False))  # a broker that does not exist
    pair.same("AlterPartitionReassignments", v, body(names("unknown")))
    pair.same("ListPartitionReassignments", 0, {"timeout_ms": 10000, "topics": None})


def scenario_list_partition_reassignments(pair, v, names):
    topic = names()
    create(pair, topic)
    pair.same("ListPartitionReassignments", v, {"timeout_ms": 10000, "topics": None})
    pair.same("ListPartitionReassignments", v, {"timeout_ms": 10000, "topics": [
        {"name": topic, "partition_indexes": [0]}]})


# ---------------------------------------------------------------- transactions: a producer's whole transaction
# at the version under test, around it its error paths. Each scenario has its own transactional ids (names()).


def txn_produce(pair, tid: str, topic: str, values: list[bytes], sequence: int, partition: int = 0, **kw) -> dict:
    return pair.same("Produce", 9, txn_produce_body(tid, topic, values, sequence, partition, **kw),
                     retry_while=leader_not_ready)


def end_txn(pair, tid: str, commit: bool, v: int = 4, **kw) -> dict:
    """EndTxn, resent while the coordinator still writes the previous transaction's markers."""
    return pair.same("EndTxn", v, end_txn_body(tid, commit, **kw), retry_while=concurrent)


def scenario_add_partitions_to_txn(pair, v, names):
    topic, tid = names(), names("txn")
    create(pair, topic, partitions=2)
    init_transactional(pair, tid)
    add = lambda partitions, **kw: pair.same(  # noqa: E731
        "AddPartitionsToTxn", v, add_partitions_body(tid, partitions, **kw), retry_while=concurrent)
    assert add({topic: [0, 1]})["results_by_topic"][0]["results_by_partition"][0]["partition_error_code"] == 0
    add({topic: [0]})  # already in the transaction
    txn_produce(pair, tid, topic, [b"a", b"b"], 0)
    txn_produce(pair, tid, topic, [b"c"], 0, partition=1)
    add({topic: [0, 5]})  # one partition unknown: the other not attempted
    add({topic: [0], names("unknown"): [0]})
    add({topic: [0], "__consumer_offsets": [0]})  # an internal topic
    add({topic: [0]}, epoch_delta=1)  # INVALID_PRODUCER_EPOCH before v2, PRODUCER_FENCED after
    add({topic: [0]}, producer_id_delta=1)
    pair.same("AddPartitionsToTxn", v, add_partitions_body(names("txn"), {topic: [0]}))  # unknown transactional id
    end_txn(pair, tid, commit=True)
    add({topic: [1]})  # the next transaction
    txn_produce(pair, tid, topic, [b"d"], 1, partition=1)
    end_txn(pair, tid, commit=False)
    pair.same("ListOffsets", 7, read_committed(list_offsets_body(topic, -1, partitions=(0, 1))),
              retry_while=lambda a: {p["partition_index"]: p["offset"] for p in a["topics"][0]["partitions"]}
              != {0: 3, 1: 4})  # the last stable offsets, once the abort's markers are written


def scenario_add_offsets_to_txn(pair, v, names):
    topic, group, tid = names(), names("g"), names("txn")
    create(pair, topic)
    init_transactional(pair, tid)
    add = lambda group, **kw: pair.same(  # noqa: E731
        "AddOffsetsToTxn", v, txn_body(tid, group_id=group, **kw), retry_while=concurrent)
    assert add(group)["error_code"] == 0  # a group starts the transaction as well as a partition does
    add(group)  # already in it
    pair.same("TxnOffsetCommit", 3, txn_offset_commit_body(tid, group, topic, {0: 1}))
    add(names("g"))  # a second group, in another (or the same) __consumer_offsets partition
    add(group, epoch_delta=1)
    add(group, producer_id_delta=1)
    pair.same("AddOffsetsToTxn", v, txn_body(names("txn"), group_id=group))  # unknown transactional id
    add("")  # an empty group id
    end_txn(pair, tid, commit=True)
    pair.same("OffsetFetch", 8, offset_fetch_body(group, topic),
              retry_while=lambda a: a["groups"][0]["topics"][0]["partitions"][0]["committed_offset"] != 1)


def scenario_end_txn(pair, v, names):
    topic, tid = names(), names("txn")
    create(pair, topic)
    init_transactional(pair, tid)
    assert end_txn(pair, tid, commit=True, v=v)["error_code"] == ErrorCode.INVALID_TXN_STATE  # no transaction
    end_txn(pair, tid, commit=False, v=v)
    pair.same("AddPartitionsToTxn", 3, add_partitions_body(tid, {topic: [0]}))
    txn_produce(pair, tid, topic, [b"a"], 0)
    end_txn(pair, tid, commit=True, v=v, epoch_delta=1)
    end_txn(pair, tid, commit=True, v=v, producer_id_delta=1)
    pair.same("EndTxn", v, end_txn_body(names("txn"), True))  # unknown transactional id
    assert end_txn(pair, tid, commit=True, v=v)["error_code"] == 0
    end_txn(pair, tid, commit=True, v=v)  # a retried commit of the committed transaction
    end_txn(pair, tid, commit=False, v=v)  # an abort of it
    pair.same("AddPartitionsToTxn", 3, add_partitions_body(tid, {topic: [0]}), retry_while=concurrent)
    txn_produce(pair, tid, topic, [b"b"], 1)
    assert end_txn(pair, tid, commit=False, v=v)["error_code"] == 0
    end_txn(pair, tid, commit=False, v=v)  # a retried abort
    end_txn(pair, tid, commit=True, v=v)
    pair.same("Fetch", 12, read_committed(fetch_body(topic, 0)), retry_while=stable_at(4))


def scenario_txn_offset_commit(pair, v, names):
    topic, group, loose, tid = names(), names("g"), names("g"), names("txn")
    create(pair, topic, partitions=2)
    member = f"member-v{v}"  # side.vars outlive a version: a member of this version's group
    join(pair, 7, group, who=member)
    sync(pair, 5, group, who=member)
    init_transactional(pair, tid)
    commit = lambda group, offsets, **kw: pair.same(  # noqa: E731
        "TxnOffsetCommit", v, txn_offset_commit_body(tid, group, topic, offsets, **kw))
    # Before AddOffsetsToTxn the group is not in the transaction: INVALID_TXN_STATE, from v4 TRANSACTION_ABORTABLE.
    commit(group, {0: 1}, member=member)
    pair.same("AddOffsetsToTxn", 3, txn_body(tid, group_id=group))
    pair.same("AddOffsetsToTxn", 3, txn_body(tid, group_id=loose))
    commit(loose, {0: 2, 1: 3})  # a group without members: no generation needed
    if v >= 3:  # the member's generation and id are checked from v3
        commit(group, {0: 5}, member=member)
        commit(group, {0: 5}, member=member, generation_delta=1)
        pair.same("TxnOffsetCommit", v, lambda side: txn_offset_commit_body(tid, group, topic, {0: 5}, member=member)(
            side) | {"member_id": "nobody"})
        pair.same("Heartbeat", 4, member_body(group, who=member))  # the member is still there
    commit(group, {0: 6})  # generation -1 in a group with a member
    commit(loose, {0: 2}, epoch_delta=1)
    commit(loose, {0: 2}, producer_id_delta=1)
    pair.same("TxnOffsetCommit", v, txn_offset_commit_body(tid, loose, names("unknown"), {0: 1}))
    pair.same("TxnOffsetCommit", v, txn_offset_commit_body(tid, loose, topic, {7: 1}))
    # An unknown transactional id, with a producer id no transaction has (both: INVALID_PRODUCER_ID_MAPPING) ...
    pair.same("TxnOffsetCommit", v, txn_offset_commit_body(names("txn"), loose, topic, {0: 1},
                                                           producer_id_delta=1_000_000))
    # ... and with the producer id and epoch of the transaction open on the group's partition. Kept difference
    # (protocol.md): Kafka verifies a producer with its transaction coordinator only when the partition has no
    # transaction of it open yet, so it accepts any transactional id here; kafkalite checks the id every time.
    # (The offset is the one committed before, so that what Kafka accepts changes nothing.)
    kafka, kafkalite = pair.both("TxnOffsetCommit", v, txn_offset_commit_body(names("txn"), loose, topic, {0: 2}))
    assert [a["topics"][0]["partitions"][0]["error_code"] for a in (kafka, kafkalite)] == [
        ErrorCode.NONE, ErrorCode.INVALID_PRODUCER_ID_MAPPING]
    pair.same("TxnOffsetCommit", v, lambda side: txn_offset_commit_body(tid, loose, topic, {0: 1})(side) | {
        "topics": [{"name": topic, "partitions": [{"partition_index": 0, "committed_offset": 1,
                                                   "committed_leader_epoch": -1, "committed_metadata": "m" * 5000}]}]})
    pair.same("TxnOffsetCommit", v, txn_offset_commit_body(tid, "", topic, {0: 1}))  # an empty group id
    pair.same("OffsetFetch", 8, offset_fetch_body(loose, topic, (0, 1)))  # not before the commit
    end_txn(pair, tid, commit=True)
    pair.same("OffsetFetch", 8, offset_fetch_body(loose, topic, (0, 1)),
              retry_while=lambda a: a["groups"][0]["topics"][0]["partitions"][0]["committed_offset"] != 2)
    pair.same("OffsetFetch", 8, offset_fetch_body(group, topic, (0, 1)))


SCENARIOS = {
    "Produce": scenario_produce, "Fetch": scenario_fetch, "ListOffsets": scenario_list_offsets,
    "WriteTxnMarkers": scenario_write_txn_markers,
    "ElectLeaders": scenario_elect_leaders, "AlterPartitionReassignments": scenario_alter_partition_reassignments,
    "ListPartitionReassignments": scenario_list_partition_reassignments,
    "Metadata": scenario_metadata, "OffsetCommit": scenario_offset_commit, "OffsetFetch": scenario_offset_fetch,
    "FindCoordinator": scenario_find_coordinator, "JoinGroup": scenario_join_group,
    "Heartbeat": scenario_heartbeat, "LeaveGroup": scenario_leave_group, "SyncGroup": scenario_sync_group,
    "DescribeGroups": scenario_describe_groups, "ListGroups": scenario_list_groups,
    "ApiVersions": scenario_api_versions, "CreateTopics": scenario_create_topics,
    "DeleteTopics": scenario_delete_topics, "DeleteRecords": scenario_delete_records,
    "InitProducerId": scenario_init_producer_id, "OffsetForLeaderEpoch": scenario_offset_for_leader_epoch,
    "DescribeConfigs": scenario_describe_configs, "AlterConfigs": scenario_alter_configs,
    "CreatePartitions": scenario_create_partitions, "DeleteGroups": scenario_delete_groups,
    "IncrementalAlterConfigs": scenario_incremental_alter_configs, "OffsetDelete": scenario_offset_delete,
    "DescribeCluster": scenario_describe_cluster,
    **TXN_SCENARIOS,
    "AddPartitionsToTxn": lambda pair, v, names: (scenario_add_partitions_to_txn if v < 4 else
                                                  TXN_SCENARIOS["AddPartitionsToTxn"])(pair, v, names),
    "AddOffsetsToTxn": scenario_add_offsets_to_txn, "EndTxn": scenario_end_txn,
    "TxnOffsetCommit": scenario_txn_offset_commit,
}


# APIs kafkalite advertises that have no scenario yet (none now; the set stays as the place to say so).
NO_SCENARIO_YET: set[str] = set()


def test_every_advertised_api_has_a_scenario():
    assert set(SCENARIOS) == {api.name for api in APIS.values()} - NO_SCENARIO_YET


@pytest.mark.parametrize("api", sorted(SCENARIOS))
def test_every_version(api, pair, names, common_versions):
    key = next(k for k, schema in APIS.items() if schema.name == api)
    versions = common_versions.get(key)
    assert versions, f"Kafka shares no version of {api} with kafkalite"
    failures = {}
    for version in versions:
        try:
            SCENARIOS[api](pair, version, names)
        except AssertionError as e:
            failures[version] = str(e)
            pair.close()  # a broker may have closed its connection; the next version starts afresh
    summary = "".join(f"  v{version}: {summary_of(failure)}\n" for version, failure in failures.items())
    assert not failures, (f"{api}: versions {sorted(failures)} of {list(versions)} differ:\n{summary}the first:\n"
                          + next(iter(failures.values())))


def summary_of(failure: str) -> str:
    """A failure's request and first difference, for the list of failing versions."""
    lines = failure.splitlines()
    return " / ".join([lines[0]] + [line.strip() for line in lines[1:] if line.startswith("--- first difference")])
