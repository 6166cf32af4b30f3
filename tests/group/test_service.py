"""GroupService (the asyncio glue) and the group handlers, at every API version, over an in-memory OffsetsLog
and a ManualClock: time moves only when a test advances it.

Each request is encoded and decoded with the real codec at the version under test, and so is
each response, so field names and per-version shapes are checked too.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import types
import uuid

import pytest

import kafkalite.broker.handlers  # noqa: F401  (importing registers the handlers)
from kafkalite.broker.context import RequestContext
from kafkalite.broker.groups import GroupService
from kafkalite.clock import ManualClock
from kafkalite.metadata.image import BrokerInfo, MetadataDelta, MetadataImage, PartitionInfo, TopicImage
from kafkalite.group import OFFSETS_TOPIC, partition_for
from kafkalite.broker.registry import HANDLERS
from kafkalite.protocol.codec import message_codec
from kafkalite.protocol.errors import ErrorCode as E
from kafkalite.protocol.messages import APIS_BY_NAME
from kafkalite.protocol.record_batch import RecordBatch, set_base_offset

SUB = b"\x00\x00\x00\x00\x00\x01\x00\x01t\xff\xff\xff\xff"


class MemoryOffsetsLog:
    """The OffsetsLog port in memory: batches per partition, as the service built them."""

    def __init__(self, partitions: int | None = 3):
        self.batches: list[list[bytes]] = [[] for _ in range(partitions or 0)]
        self.exists = partitions is not None
        self.fail_appends = False
        self.reads: list[int] = []

    def partition_count(self) -> int | None:
        return len(self.batches) if self.exists else None

    def read_partition(self, partition: int) -> list[tuple[bytes | None, bytes | None]]:
        self.reads.append(partition)
        return [(r.key, r.value) for b in self.batches[partition] for r in RecordBatch(memoryview(b)).records()]

    async def append(self, partition: int, batch: bytes) -> int:
        await asyncio.sleep(0)  # a real append waits for its fsync
        if self.fail_appends:
            raise OSError("disk full")
        stored = self.batches[partition]
        base = RecordBatch(memoryview(stored[-1])).next_offset if stored else 0
        buf = bytearray(batch)
        set_base_offset(buf, base)
        self.batches[partition].append(bytes(buf))
        return base

    def count(self) -> int:
        return sum(len(p) for p in self.batches)


class FakeBroker:
    """The services the group handlers reach through the request context: config, the metadata image (data
    topics t and u, __consumer_offsets led by this broker) and the group service."""

    # Data topics that exist, for OffsetCommit's check: name -> partition count.
    user_topics = {"t": 8, "u": 8}

    def __init__(self, offsets_log: MemoryOffsetsLog | None = None, clock: ManualClock | None = None, **settings):
        settings = {"offsets.topic.num.partitions": 3, "group.initial.rebalance.delay.ms": 0,
                    "group.min.session.timeout.ms": 10, **settings}
        self.config = types.SimpleNamespace(settings=settings, host="broker.local", port=19092, node_id=7)
        self.node_id = 7
        self.offsets_log = offsets_log or MemoryOffsetsLog(3)
        self.clock = clock or ManualClock(1_700_000_000_000)
        self.groups = GroupService(settings, self.offsets_log, self.clock)
        led = PartitionInfo(replicas=(7,), leader=7, leader_epoch=0, isr=(7,))
        topics = {name: TopicImage(name, uuid.uuid4(), (led,) * count)
                  for name, count in {**self.user_topics, OFFSETS_TOPIC: 3}.items()}
        image = MetadataImage().apply(MetadataDelta(topics=topics, brokers={7: BrokerInfo(7, "broker.local", 19092)},
                                                    controller_id=7, cluster_id="fake"))
        self.metadata = types.SimpleNamespace(image=image)


async def until(condition, turns: int = 1000) -> None:
    """Let the event loop run until condition() holds (no wall-clock time involved)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def parked_joins(broker, group="g") -> int:
    g = broker.groups.coordinator.groups.get(group)
    return 0 if g is None else sum(m.join_token is not None for m in g.members.values())


async def call(broker, api_name: str, version: int, request: dict, client_id="client") -> dict:
    """Encode and decode the request and the response at `version`, as the server would."""
    api = APIS_BY_NAME[api_name]
    out = bytearray()
    message_codec(api, version, True).encode_into(out, [], request)
    decoded, _ = message_codec(api, version, True).decode(bytes(out))
    ctx = RequestContext(broker, api.key, version, 1, client_id, "/127.0.0.1", 1)
    response = await HANDLERS[api.key](ctx, decoded)
    out = bytearray()
    message_codec(api, version, False).encode_into(out, [], response)
    return message_codec(api, version, False).decode(bytes(out))[0]


@pytest.fixture
async def broker():
    b = FakeBroker()
    await b.groups.load_all()
    yield b
    await b.groups.stop()


def join_request(member_id="", group="g", instance=None):
    return {"group_id": group, "session_timeout_ms": 10000, "rebalance_timeout_ms": 10000, "member_id": member_id,
            "group_instance_id": instance, "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": SUB}]}


async def join(broker, version, group="g", instance=None):
    r = await call(broker, "JoinGroup", version, join_request(group=group, instance=instance))
    if r["error_code"] == E.MEMBER_ID_REQUIRED:
        assert version >= 4
        r = await call(broker, "JoinGroup", version, join_request(r["member_id"], group))
    return r


@pytest.mark.parametrize("version", range(0, 8))
async def test_join_sync_heartbeat_leave_at_every_join_version(broker, version):
    r = await join(broker, version)
    assert r["error_code"] == E.NONE and r["generation_id"] == 1 and r["leader"] == r["member_id"]
    assert r["protocol_name"] == "range" and bytes(r["members"][0]["metadata"]) == SUB
    if version >= 7:
        assert r["protocol_type"] == "consumer"
    member = r["member_id"]
    sync_version = min(version, 5)
    s = await call(broker, "SyncGroup", sync_version, {
        "group_id": "g", "generation_id": 1, "member_id": member, "protocol_type": "consumer",
        "protocol_name": "range", "assignments": [{"member_id": member, "assignment": b"A"}]})
    assert s["error_code"] == E.NONE and bytes(s["assignment"]) == b"A"
    hb_version = min(version, 4)
    h = await call(broker, "Heartbeat", hb_version, {"group_id": "g", "generation_id": 1, "member_id": member})
    assert h["error_code"] == E.NONE
    leave_version = min(version, 4)
    if leave_version >= 3:
        lv = await call(broker, "LeaveGroup", leave_version,
                        {"group_id": "g", "members": [{"member_id": member}, {"member_id": "ghost"}]})
        assert [m["error_code"] for m in lv["members"]] == [E.NONE, E.UNKNOWN_MEMBER_ID]
    else:
        lv = await call(broker, "LeaveGroup", leave_version, {"group_id": "g", "member_id": member})
        assert lv["error_code"] == E.NONE
        lv = await call(broker, "LeaveGroup", leave_version, {"group_id": "g", "member_id": member})
        assert lv["error_code"] == E.UNKNOWN_MEMBER_ID
    assert broker.groups.coordinator.groups["g"].state.value == "Empty"


async def test_followers_wait_for_the_leader():
    broker = FakeBroker(**{"group.initial.rebalance.delay.ms": 50})
    await broker.groups.load_all()
    joins = [asyncio.ensure_future(join(broker, 7)) for _ in range(2)]
    await until(lambda: parked_joins(broker) == 2)
    broker.clock.advance(99)  # the second member came during the initial delay: it is extended once
    assert broker.groups.coordinator.groups["g"].state.value == "PreparingRebalance"
    broker.clock.advance(1)
    a, b = await asyncio.gather(*joins)
    assert a["generation_id"] == b["generation_id"] == 1 and a["leader"] == b["leader"]
    leader, follower = (a, b) if a["leader"] == a["member_id"] else (b, a)
    assert len(leader["members"]) == 2 and follower["members"] == []
    follower_sync = asyncio.ensure_future(call(broker, "SyncGroup", 5, {
        "group_id": "g", "generation_id": 1, "member_id": follower["member_id"], "assignments": []}))
    await until(lambda: broker.groups.coordinator.groups["g"].members[follower["member_id"]].sync_token is not None)
    assert not follower_sync.done()
    await call(broker, "SyncGroup", 5, {"group_id": "g", "generation_id": 1, "member_id": leader["member_id"],
                                        "assignments": [{"member_id": follower["member_id"], "assignment": b"F"}]})
    assert bytes((await follower_sync)["assignment"]) == b"F"
    await broker.groups.stop()


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
async def test_find_coordinator(broker, version):
    if version >= 4:
        r = await call(broker, "FindCoordinator", version, {"key_type": 0, "coordinator_keys": ["a", "b"]})
        assert [(c["key"], c["node_id"], c["host"], c["port"]) for c in r["coordinators"]] == [
            ("a", 7, "broker.local", 19092), ("b", 7, "broker.local", 19092)]
    else:
        r = await call(broker, "FindCoordinator", version, {"key": "g", "key_type": 0})
        assert (r["error_code"], r["node_id"], r["host"], r["port"]) == (0, 7, "broker.local", 19092)


@pytest.mark.parametrize("version", range(2, 9))
async def test_offset_commit_and_fetch_every_version(broker, version):
    r = await call(broker, "OffsetCommit", version, {
        "group_id": "solo", "generation_id_or_member_epoch": -1, "member_id": "", "retention_time_ms": -1,
        "topics": [{"name": "t", "partitions": [
            {"partition_index": 0, "committed_offset": 42, "committed_leader_epoch": 0, "committed_metadata": "m"},
            {"partition_index": 1, "committed_offset": 7, "committed_metadata": None}]}]})
    assert [p["error_code"] for p in r["topics"][0]["partitions"]] == [0, 0]
    fetch_version = min(version, 8)
    for v in sorted({1, fetch_version}):
        if v >= 8:
            f = await call(broker, "OffsetFetch", v, {"groups": [
                {"group_id": "solo", "topics": None},
                {"group_id": "nobody", "topics": [{"name": "t", "partition_indexes": [0]}]}]})
            first, second = f["groups"]
            rows = [(p["partition_index"], p["committed_offset"], p["metadata"])
                    for p in first["topics"][0]["partitions"]]
            assert rows == [(0, 42, "m"), (1, 7, "")]
            assert second["topics"][0]["partitions"][0]["committed_offset"] == -1
        else:
            f = await call(broker, "OffsetFetch", v, {"group_id": "solo",
                                                      "topics": [{"name": "t", "partition_indexes": [0, 5]}]})
            rows = [(p["partition_index"], p["committed_offset"]) for p in f["topics"][0]["partitions"]]
            assert rows == [(0, 42), (5, -1)]
            if v >= 5:  # the epoch is committed from OffsetCommit v6
                assert f["topics"][0]["partitions"][0]["committed_leader_epoch"] == (0 if version >= 6 else -1)


async def test_offset_commit_to_a_missing_topic_or_partition_is_refused(broker):
    r = await call(broker, "OffsetCommit", 8, {
        "group_id": "solo", "generation_id_or_member_epoch": -1, "member_id": "",
        "topics": [{"name": "t", "partitions": [{"partition_index": 0, "committed_offset": 5},
                                                 {"partition_index": 8, "committed_offset": 5}]},
                   {"name": "nope", "partitions": [{"partition_index": 0, "committed_offset": 5}]}]})
    codes = {(t["name"], p["partition_index"]): p["error_code"] for t in r["topics"] for p in t["partitions"]}
    assert codes == {("t", 0): 0, ("t", 8): E.UNKNOWN_TOPIC_OR_PARTITION, ("nope", 0): E.UNKNOWN_TOPIC_OR_PARTITION}
    f = await call(broker, "OffsetFetch", 8, {"groups": [{"group_id": "solo", "topics": None}]})
    committed = {(t["name"], p["partition_index"]) for t in f["groups"][0]["topics"] for p in t["partitions"]}
    assert committed == {("t", 0)}


async def test_offset_fetch_all_partitions_before_v8(broker):
    await call(broker, "OffsetCommit", 8, {"group_id": "solo", "generation_id_or_member_epoch": -1, "member_id": "",
                                           "topics": [{"name": "t", "partitions": [
                                               {"partition_index": 3, "committed_offset": 1,
                                                "committed_metadata": ""}]}]})
    f = await call(broker, "OffsetFetch", 7, {"group_id": "solo", "topics": None})
    assert f["topics"][0]["partitions"][0]["partition_index"] == 3


async def test_commit_is_durable_before_the_reply_and_survives_a_restart(broker):
    await call(broker, "OffsetCommit", 8, {"group_id": "g", "generation_id_or_member_epoch": -1, "member_id": "",
                                           "topics": [{"name": "t", "partitions": [
                                               {"partition_index": 0, "committed_offset": 9,
                                                "committed_metadata": ""}]}]})
    r = await join(broker, 7, group="g2")
    await call(broker, "SyncGroup", 5, {"group_id": "g2", "generation_id": 1, "member_id": r["member_id"],
                                        "assignments": [{"member_id": r["member_id"], "assignment": b"A"}]})
    assert broker.offsets_log.count() == 2
    restarted = FakeBroker(broker.offsets_log)
    await restarted.groups.load_all()
    try:
        assert restarted.groups.offset_fetch("g", [("t", 0)])[0][2].offset == 9
        h = await call(restarted, "Heartbeat", 4, {"group_id": "g2", "generation_id": 1, "member_id": r["member_id"]})
        assert h["error_code"] == E.NONE
    finally:
        await restarted.groups.stop()


async def test_failed_append_fails_the_commit(broker):
    broker.offsets_log.fail_appends = True
    r = await call(broker, "OffsetCommit", 8, {"group_id": "g", "generation_id_or_member_epoch": -1, "member_id": "",
                                               "topics": [{"name": "t", "partitions": [
                                                   {"partition_index": 0, "committed_offset": 9,
                                                    "committed_metadata": ""}]}]})
    assert r["topics"][0]["partitions"][0]["error_code"] == E.COORDINATOR_NOT_AVAILABLE
    assert broker.groups.offset_fetch("g", [("t", 0)])[0][2] is None


async def test_not_loaded_yet():
    b = FakeBroker()
    r = await call(b, "JoinGroup", 7, join_request())
    assert r["error_code"] == E.COORDINATOR_LOAD_IN_PROGRESS
    r = await call(b, "OffsetFetch", 8, {"groups": [{"group_id": "g", "topics": None}]})
    assert r["groups"][0]["error_code"] == E.COORDINATOR_LOAD_IN_PROGRESS


async def test_session_expires_on_the_service_clock(broker):
    r = await call(broker, "JoinGroup", 5, {**join_request(), "session_timeout_ms": 30})
    r = await call(broker, "JoinGroup", 5, {**join_request(r["member_id"]), "session_timeout_ms": 30})
    assert r["error_code"] == E.NONE
    broker.clock.advance(29)
    assert broker.groups.coordinator.groups["g"].state.value == "CompletingRebalance"
    broker.clock.advance(1)
    await broker.groups.settle_background()
    assert broker.groups.coordinator.groups["g"].state.value == "Empty"
    assert broker.offsets_log.count() == 1  # the emptied group was persisted by a timer


@pytest.mark.parametrize("version", range(0, 6))
async def test_describe_groups(broker, version):
    r = await join(broker, 7)
    await call(broker, "SyncGroup", 5, {"group_id": "g", "generation_id": 1, "member_id": r["member_id"],
                                        "assignments": [{"member_id": r["member_id"], "assignment": b"A"}]})
    d = await call(broker, "DescribeGroups", version, {"groups": ["g", "nope"], "include_authorized_operations": True})
    g, nope = d["groups"]
    assert (g["group_state"], g["protocol_type"], g["protocol_data"]) == ("Stable", "consumer", "range")
    m = g["members"][0]
    assert (m["member_id"], m["client_id"], m["client_host"], bytes(m["member_assignment"])) == (
        r["member_id"], "client", "/127.0.0.1", b"A")
    assert nope["group_state"] == "Dead" and nope["error_code"] == 0
    if version >= 3:
        assert g["authorized_operations"] > 0


@pytest.mark.parametrize("version", range(0, 5))
async def test_list_and_delete_groups(broker, version):
    await join(broker, 7, group="busy")
    await call(broker, "OffsetCommit", 8, {"group_id": "idle", "generation_id_or_member_epoch": -1, "member_id": "",
                                           "topics": [{"name": "t", "partitions": [
                                               {"partition_index": 0, "committed_offset": 1,
                                                "committed_metadata": ""}]}]})
    r = await call(broker, "ListGroups", version, {"states_filter": ["empty"]})
    listed = [g["group_id"] for g in r["groups"]]
    assert listed == (["idle"] if version >= 4 else ["busy", "idle"])
    if version >= 4:
        assert r["groups"][0]["group_state"] == "Empty"
    d = await call(broker, "DeleteGroups", min(version, 2), {"groups_names": ["busy", "idle", "ghost"]})
    assert [(x["group_id"], x["error_code"]) for x in d["results"]] == [
        ("busy", E.NON_EMPTY_GROUP), ("idle", E.NONE), ("ghost", E.GROUP_ID_NOT_FOUND)]


async def test_offset_delete(broker):
    r = await call(broker, "OffsetDelete", 0, {"group_id": "ghost",
                                               "topics": [{"name": "t", "partitions": [{"partition_index": 0}]}]})
    assert r["error_code"] == E.GROUP_ID_NOT_FOUND
    member = (await join(broker, 7))["member_id"]
    await call(broker, "OffsetCommit", 8, {"group_id": "g", "generation_id_or_member_epoch": 1, "member_id": member,
                                           "topics": [{"name": n,
                                                       "partitions": [{"partition_index": 0, "committed_offset": 1,
                                                                       "committed_metadata": ""}]} for n in "tu"]})
    await call(broker, "SyncGroup", 5, {"group_id": "g", "generation_id": 1, "member_id": member, "assignments": []})
    await call(broker, "OffsetCommit", 8, {"group_id": "g", "generation_id_or_member_epoch": 1, "member_id": member,
                                           "topics": [{"name": n,
                                                       "partitions": [{"partition_index": 0, "committed_offset": 1,
                                                                       "committed_metadata": ""}]} for n in "tu"]})
    r = await call(broker, "OffsetDelete", 0, {"group_id": "g", "topics": [
        {"name": "t", "partitions": [{"partition_index": 0}]}, {"name": "u", "partitions": [{"partition_index": 0}]}]})
    assert [t["partitions"][0]["error_code"] for t in r["topics"]] == [86, 0]


# ------------------------------------------------------------ per-partition load and unload (cluster mode)


def group_in(partition: int, prefix: str = "g") -> str:
    return next(f"{prefix}{i}" for i in range(1000) if partition_for(f"{prefix}{i}", 3) == partition)


async def commit(broker, group: str, offset: int) -> int:
    r = await call(broker, "OffsetCommit", 8, {"group_id": group, "generation_id_or_member_epoch": -1, "member_id": "",
                                               "topics": [{"name": "t", "partitions": [
                                                   {"partition_index": 0, "committed_offset": offset}]}]})
    return r["topics"][0]["partitions"][0]["error_code"]


async def fetch(broker, group: str) -> tuple[int, int]:
    """(group error, committed offset of t/0) as OffsetFetch v8 answers."""
    r = (await call(broker, "OffsetFetch", 8, {"groups": [{"group_id": group, "topics": [
        {"name": "t", "partition_indexes": [0]}]}]}))["groups"][0]
    return r["error_code"], r["topics"][0]["partitions"][0]["committed_offset"]


async def test_load_partition_reads_only_that_partition_and_serves_only_its_groups(broker):
    ours, theirs = group_in(1), group_in(2)
    assert await commit(broker, ours, 5) == await commit(broker, theirs, 6) == E.NONE
    await broker.groups.stop()
    broker.offsets_log.reads.clear()
    cluster = FakeBroker(broker.offsets_log)  # a broker that leads only partition 1
    await cluster.groups.load_partition(1)
    assert cluster.offsets_log.reads == [1] and cluster.groups.loaded
    assert await fetch(cluster, ours) == (E.NONE, 5)
    assert (await fetch(cluster, theirs))[0] == E.NOT_COORDINATOR
    assert await commit(cluster, theirs, 7) == E.NOT_COORDINATOR
    h = await call(cluster, "Heartbeat", 4, {"group_id": theirs, "generation_id": 1, "member_id": "m"})
    assert h["error_code"] == E.NOT_COORDINATOR
    assert (await call(cluster, "JoinGroup", 7, join_request(group=theirs)))["error_code"] == E.NOT_COORDINATOR
    await cluster.groups.load_partition(2)  # leadership of 2 arrives: 1's groups stay
    assert await fetch(cluster, theirs) == (E.NONE, 6) and await fetch(cluster, ours) == (E.NONE, 5)
    await cluster.groups.stop()


async def test_requests_wait_out_a_partition_load():
    b = FakeBroker()
    release = threading.Event()
    read = b.offsets_log.read_partition
    b.offsets_log.read_partition = lambda p: (release.wait(10), read(p))[1]
    loading = asyncio.ensure_future(b.groups.load_partition(1))
    await until(lambda: b.groups.coordinator.loading_partitions == {1})
    group = group_in(1)
    assert b.groups.coordinator_error(group) == E.COORDINATOR_LOAD_IN_PROGRESS and not b.groups.loaded
    assert (await call(b, "JoinGroup", 7, join_request(group=group)))["error_code"] == E.COORDINATOR_LOAD_IN_PROGRESS
    assert (await fetch(b, group))[0] == E.COORDINATOR_LOAD_IN_PROGRESS
    release.set()
    await loading
    assert b.groups.coordinator_error(group) == E.NONE and b.groups.loaded
    await b.groups.stop()


async def test_unload_partition_answers_parked_joins_and_cancels_timers(broker):
    group = group_in(1)
    first = await join(broker, 7, group=group)
    member = first["member_id"]
    retention_only = len(broker.clock.pending())
    rejoin = asyncio.ensure_future(join(broker, 7, group=group))  # a second member: the first must rejoin
    await until(lambda: parked_joins(broker, group) == 1)
    assert len(broker.clock.pending()) > retention_only
    broker.groups.unload_partition(1)
    assert (await rejoin)["error_code"] == E.NOT_COORDINATOR
    assert broker.clock.pending() == [broker.groups.config.offsets_retention_check_interval_ms
                                      + 1_700_000_000_000]  # only the offset expiry check is left
    h = await call(broker, "Heartbeat", 4, {"group_id": group, "generation_id": 1, "member_id": member})
    assert h["error_code"] == E.NOT_COORDINATOR
    assert group not in broker.groups.coordinator.groups and broker.offsets_log.count() == 0  # nothing written


async def test_an_unload_during_the_load_wins():
    b = FakeBroker()
    release = threading.Event()
    read = b.offsets_log.read_partition
    b.offsets_log.read_partition = lambda p: (release.wait(10), read(p))[1]
    loading = asyncio.ensure_future(b.groups.load_partition(1))
    await until(lambda: b.groups.coordinator.loading_partitions == {1})
    b.groups.unload_partition(1)
    release.set()
    await loading
    assert b.groups.coordinator_error(group_in(1)) == E.NOT_COORDINATOR
    await b.groups.stop()


async def test_group_state_changes_are_logged_at_info(broker, caplog):
    caplog.set_level(logging.INFO, logger="kafkalite.groups")
    r = await call(broker, "JoinGroup", 5, {**join_request(), "session_timeout_ms": 30})
    r = await call(broker, "JoinGroup", 5, {**join_request(r["member_id"]), "session_timeout_ms": 30})
    member = r["member_id"]
    await call(broker, "SyncGroup", 5, {"group_id": "g", "generation_id": 1, "member_id": member,
                                        "assignments": [{"member_id": member, "assignment": b"A"}]})
    broker.clock.advance(30)
    await broker.groups.settle_background()
    lines = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.INFO]
    assert lines == [
        f"group g: member {member} joined",
        f"group g: rebalance started in state Empty, generation 0 (member {member} joined)",
        f"group g: generation 1 formed with 1 member(s), protocol range, leader {member}; awaiting its assignment",
        "group g: generation 1 is Stable: the leader's assignment for 1 member(s) is in",
        f"group g: member {member} expired: no heartbeat within its session timeout of 30 ms",
        f"group g: rebalance started in state Stable, generation 1 (member {member} expired)",
        "group g: now Empty, generation 2",
    ]


async def test_loading_a_loaded_partition_again_answers_its_parked_joins(broker):
    group = group_in(1)
    await join(broker, 7, group=group)
    rejoin = asyncio.ensure_future(join(broker, 7, group=group))
    await until(lambda: parked_joins(broker, group) == 1)
    await broker.groups.load_partition(1)
    assert (await asyncio.wait_for(rejoin, 5))["error_code"] == E.NOT_COORDINATOR
    assert broker.groups.coordinator_error(group) == E.NONE
