"""The transaction admin APIs: DescribeTransactions, ListTransactions and DescribeProducers, in the pure
coordinator and through the handlers of an in-process standalone broker (on a ManualClock)."""

from __future__ import annotations

import re

import pytest

from kafkalite.broker.handlers.describe_producers import UNKNOWN_TOPIC_MESSAGE
from kafkalite.protocol.errors import ErrorCode
from kafkalite.txn import TransactionCoordinator, TxnConfig, TxnState
from txn_inproc import START_MS, TIMEOUT_MS, running_broker

TOPIC = "t"

# ------------------------------------------------------------------ the pure coordinator


def test_state_names_are_the_ones_kafka_prints():
    assert [s.kafka_name for s in TxnState] == ["Empty", "Ongoing", "PrepareCommit", "PrepareAbort",
                                                "CompleteCommit", "CompleteAbort", "Dead", "PrepareEpochFence"]
    assert all(TxnState.from_kafka_name(s.kafka_name) is s for s in TxnState)
    assert TxnState.from_kafka_name("ongoing") is None and TxnState.from_kafka_name("ONGOING") is None


def loaded_coordinator() -> TransactionCoordinator:
    c = TransactionCoordinator(TxnConfig(num_partitions=2, max_timeout_ms=60_000))
    for p in range(2):
        c.load_partition(p, [], 0)
    return c


def apply(c: TransactionCoordinator, plan) -> None:
    assert plan.error == ErrorCode.NONE, ErrorCode(plan.error).name
    c.apply(plan)


def begin(c: TransactionCoordinator, txn_id: str, producer_id: int, now: int, *partitions) -> None:
    """Init `txn_id` at `now`; with partitions, its transaction starts at now + 1."""
    apply(c, c.init_producer_id(now, txn_id, 10_000, new_producer_id=producer_id))
    if partitions:
        apply(c, c.add_partitions(now + 1, txn_id, producer_id, 0, set(partitions)))


def ids(metas) -> list[str]:
    return [m.transactional_id for m in metas]


def test_list_filters_by_state_and_producer_id_and_sorts_by_id():
    c = loaded_coordinator()
    begin(c, "b-ongoing", 7, 100, ("t", 0))
    begin(c, "a-empty", 8, 100)
    begin(c, "c-committed", 9, 100, ("t", 1))
    apply(c, c.end_txn(200, "c-committed", 9, 0, commit=True))
    apply(c, c.complete(201, "c-committed"))
    assert ids(c.list_transactions(300, None, set())) == ["a-empty", "b-ongoing", "c-committed"]
    assert ids(c.list_transactions(300, {TxnState.ONGOING, TxnState.COMPLETE_COMMIT}, set())) == [
        "b-ongoing", "c-committed"]
    assert ids(c.list_transactions(300, set(), set())) == []  # only unknown states were asked for
    assert ids(c.list_transactions(300, None, {8, 9})) == ["a-empty", "c-committed"]
    assert ids(c.list_transactions(300, {TxnState.ONGOING}, {8, 9})) == []


def test_duration_filter_keeps_transactions_running_longer_than_it_as_kafka():
    c = loaded_coordinator()
    begin(c, "started-101", 7, 100, ("t", 0))
    begin(c, "never-started", 8, 100)
    # now - start must exceed the duration: 151 - 101 = 50 is not longer than 50
    assert ids(c.list_transactions(151, None, set(), min_duration_ms=50)) == ["never-started"]
    assert ids(c.list_transactions(152, None, set(), min_duration_ms=50)) == ["never-started", "started-101"]
    assert ids(c.list_transactions(152, None, set(), min_duration_ms=-1)) == ["never-started", "started-101"]


def test_the_id_pattern_must_match_the_whole_transactional_id():
    c = loaded_coordinator()
    for producer_id, txn_id in enumerate(("open-a1", "open-b2", "xopen")):
        begin(c, txn_id, producer_id, 100)
    def matching(pattern: str) -> list[str]:
        return ids(c.list_transactions(200, None, set(), id_pattern=re.compile(pattern)))
    # what Kafka 4.1.1 listed for the same ids and patterns
    assert matching("open") == [] and matching("open-a") == [] and matching("x") == []
    assert matching("open.*") == ["open-a1", "open-b2"]
    assert matching(".*b2") == ["open-b2"]
    assert matching("(?i)OPEN.*") == ["open-a1", "open-b2"]
    assert matching(r"open-\w1") == ["open-a1"]


def test_describe_and_list_hide_unknown_and_dead_ids():
    c = loaded_coordinator()
    begin(c, "gone", 7, 100)
    assert c.describe("gone").producer_id == 7
    assert c.describe("never") is None
    c.transactions["gone"] = c.transactions["gone"].copy(state=TxnState.DEAD)  # being expired
    assert c.describe("gone") is None
    assert c.list_transactions(200, None, set()) == []


# ------------------------------------------------------------------ through the handlers


@pytest.fixture
async def broker(tmp_path):
    async with running_broker(str(tmp_path / "data"), {TOPIC: 3, "u": 1}) as b:
        yield b


async def describe(broker, *txn_ids: str) -> list[dict]:
    return (await broker.call("DescribeTransactions", 0, {"transactional_ids": list(txn_ids)}))["transaction_states"]


async def test_describe_follows_a_transaction_from_empty_to_complete_commit(broker):
    pid, epoch = await broker.init("tx")
    [empty] = await describe(broker, "tx")
    assert empty == {"error_code": 0, "transactional_id": "tx", "transaction_state": "Empty",
                     "transaction_timeout_ms": TIMEOUT_MS, "transaction_start_time_ms": -1, "producer_id": pid,
                     "producer_epoch": epoch, "topics": []}
    broker.clock.advance(5)
    assert await broker.add("tx", pid, epoch, TOPIC, 2, 0) == {0}
    assert await broker.add("tx", pid, epoch, "u", 0) == {0}
    [ongoing] = await describe(broker, "tx")
    assert ongoing["transaction_state"] == "Ongoing"
    assert ongoing["transaction_start_time_ms"] == START_MS + 5
    assert ongoing["topics"] == [{"topic": TOPIC, "partitions": [0, 2]}, {"topic": "u", "partitions": [0]}]
    assert await broker.end("tx", pid, epoch, commit=True) == 0
    [done] = await describe(broker, "tx")
    assert (done["transaction_state"], done["topics"]) == ("CompleteCommit", [])
    assert done["transaction_start_time_ms"] == START_MS + 5  # the last transaction's, as Kafka keeps it


async def test_describe_answers_each_id_on_its_own(broker):
    await broker.init("known")
    states = await describe(broker, "unknown", "", "known")
    assert [(s["transactional_id"], s["error_code"]) for s in states] == [
        ("unknown", ErrorCode.TRANSACTIONAL_ID_NOT_FOUND), ("", ErrorCode.INVALID_REQUEST), ("known", 0)]
    # an error carries nothing else, as Kafka's zeros
    assert states[0] == {"error_code": ErrorCode.TRANSACTIONAL_ID_NOT_FOUND, "transactional_id": "unknown",
                         "transaction_state": "", "transaction_timeout_ms": 0, "transaction_start_time_ms": 0,
                         "producer_id": 0, "producer_epoch": 0, "topics": []}


async def list_txns(broker, version=1, states=(), pids=(), duration=-1, pattern=None) -> dict:
    body = {"state_filters": list(states), "producer_id_filters": list(pids), "duration_filter": duration,
            "transactional_id_pattern": pattern}
    return await broker.call("ListTransactions", version, body)


def listed(resp: dict) -> list[tuple[str, int, str]]:
    assert resp["error_code"] == 0
    return [(s["transactional_id"], s["producer_id"], s["transaction_state"]) for s in resp["transaction_states"]]


@pytest.mark.parametrize("version", [0, 1, 2])
async def test_list_filters_by_state_and_producer_and_echoes_unknown_states(broker, version):
    open_pid, open_epoch = await broker.init("open")
    idle_pid, _ = await broker.init("idle")
    assert await broker.add("open", open_pid, open_epoch, TOPIC, 0) == {0}
    assert listed(await list_txns(broker, version)) == [("idle", idle_pid, "Empty"), ("open", open_pid, "Ongoing")]
    resp = await list_txns(broker, version, states=["Ongoing", "Bogus", "ongoing"])
    assert listed(resp) == [("open", open_pid, "Ongoing")]
    assert resp["unknown_state_filters"] == ["Bogus", "ongoing"]
    only_unknown = await list_txns(broker, version, states=["Bogus"])
    assert listed(only_unknown) == [] and only_unknown["unknown_state_filters"] == ["Bogus"]
    assert listed(await list_txns(broker, version, pids=[idle_pid])) == [("idle", idle_pid, "Empty")]


async def test_list_v1_duration_filter_uses_the_coordinators_clock(broker):
    pid, epoch = await broker.init("open")
    assert await broker.add("open", pid, epoch, TOPIC, 0) == {0}
    assert listed(await list_txns(broker, states=["Ongoing"], duration=1_000)) == []
    broker.clock.advance(1_001)
    assert listed(await list_txns(broker, states=["Ongoing"], duration=1_000)) == [("open", pid, "Ongoing")]


async def test_list_v2_filters_by_a_pattern_of_the_whole_id(broker):
    pids = {txn_id: (await broker.init(txn_id))[0] for txn_id in ("orders-1", "orders-2", "payments-1")}
    assert listed(await list_txns(broker, 2, pattern="orders-.*")) == [
        ("orders-1", pids["orders-1"], "Empty"), ("orders-2", pids["orders-2"], "Empty")]
    assert listed(await list_txns(broker, 2, pattern="orders")) == []  # the whole id, not a part
    for everything in (None, ""):
        assert len(listed(await list_txns(broker, 2, pattern=everything))) == 3
    assert listed(await list_txns(broker, 2, pattern=".*-1", pids=[pids["orders-1"]])) == [
        ("orders-1", pids["orders-1"], "Empty")]
    bad = await list_txns(broker, 2, pattern="[")
    assert (bad["error_code"], bad["transaction_states"]) == (ErrorCode.INVALID_REGULAR_EXPRESSION, [])


async def test_a_broker_lists_and_describes_only_the_transactions_it_coordinates(broker):
    await broker.init("tx")
    await broker.init("other")
    service = broker.app.services.transactions
    partition = service.coordinator.partition_for("tx")
    assert service.coordinator.partition_for("other") != partition
    service.unload_partition(partition)  # as when leadership of that __transaction_state partition moves away
    [state] = await describe(broker, "tx")
    assert state["error_code"] == ErrorCode.NOT_COORDINATOR
    listed = await list_txns(broker)
    assert listed["error_code"] == ErrorCode.NONE
    assert [t["transactional_id"] for t in listed["transaction_states"]] == ["other"]


async def describe_producers(broker, *partitions: tuple[str, list[int]]) -> list[dict]:
    resp = await broker.call("DescribeProducers", 0, {"topics": [
        {"name": name, "partition_indexes": indexes} for name, indexes in partitions]})
    return resp["topics"]


async def test_describe_producers_shows_the_open_transaction_then_its_end(broker):
    pid, epoch = await broker.init("tx")
    assert await broker.add("tx", pid, epoch, TOPIC, 1) == {0}
    await broker.produce_txn(TOPIC, 1, pid, epoch, 0, b"a", b"b")
    await broker.produce_txn(TOPIC, 1, pid, epoch, 2, b"c")
    [topic] = await describe_producers(broker, (TOPIC, [0, 1]))
    idle, busy = topic["partitions"]
    assert (idle["partition_index"], idle["error_code"], idle["active_producers"]) == (0, 0, [])
    assert busy["error_code"] == 0 and busy["error_message"] is None
    [producer] = busy["active_producers"]
    assert (producer["producer_id"], producer["producer_epoch"], producer["last_sequence"]) == (pid, epoch, 2)
    assert producer["current_txn_start_offset"] == 0
    assert producer["last_timestamp"] > 0
    assert await broker.end("tx", pid, epoch, commit=True) == 0
    [topic] = await describe_producers(broker, (TOPIC, [1]))
    [producer] = topic["partitions"][0]["active_producers"]
    assert producer["current_txn_start_offset"] == -1 and producer["last_sequence"] == 2


async def test_describe_producers_errors_are_kafkas(broker, monkeypatch):
    topics = await describe_producers(broker, ("missing", [0, 1]), (TOPIC, [7]))
    assert topics[0] == {"name": "missing", "partitions": [
        {"partition_index": i, "error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
         "error_message": UNKNOWN_TOPIC_MESSAGE, "active_producers": []} for i in (0, 1)]}
    assert topics[1]["partitions"] == [{"partition_index": 7, "error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                        "error_message": None, "active_producers": []}]
    # a partition that exists but has no replica here (another broker's, in a cluster)
    elsewhere = broker.app.replicas.replica
    monkeypatch.setattr(broker.app.replicas, "replica", lambda t, i: None if (t, i) == (TOPIC, 2) else elsewhere(t, i))
    [topic] = await describe_producers(broker, (TOPIC, [2, 0]))
    assert [(p["partition_index"], p["error_code"]) for p in topic["partitions"]] == [
        (2, ErrorCode.NOT_LEADER_OR_FOLLOWER), (0, 0)]


async def test_api_versions_advertises_the_admin_apis(broker):
    resp = await broker.call("ApiVersions", 3, {"client_software_name": "t", "client_software_version": "1"})
    ranges = {k["api_key"]: (k["min_version"], k["max_version"]) for k in resp["api_keys"]}
    assert (ranges[61], ranges[65], ranges[66], ranges[24]) == ((0, 0), (0, 0), (0, 2), (0, 5))
