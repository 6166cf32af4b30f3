"""The transaction handlers, Fetch and ListOffsets with isolation levels, called on an in-process broker over a
temporary data directory. Requests and responses go through the codec at the version under test."""

from __future__ import annotations

import pytest

import kafkalite.broker.handlers  # noqa: F401  (registers the handlers)
from kafkalite.app import App
from kafkalite.config import BrokerConfig
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.record_batch import TRANSACTIONAL_BIT, build_batch, iter_batches
from inproc import call_handler

TXN, TOPIC = "txn-h", "t"


class Broker:
    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.app: App | None = None

    async def start(self) -> None:
        config = BrokerConfig(data_dir=self.data_dir)
        config.set("offsets.topic.num.partitions", 1)
        config.set("transaction.state.log.num.partitions", 2)
        config.set("kafkalite.durability", "never")
        self.app = App(config)
        await self.app.start()

    async def restart(self) -> None:
        await self.app.stop()
        await self.start()

    async def call(self, api_name: str, version: int, body: dict) -> dict:
        return await call_handler(self.app.services, api_name, version, body)


@pytest.fixture
async def broker(tmp_path):
    b = Broker(str(tmp_path / "data"))
    await b.start()
    await b.app.metadata.create_topic(TOPIC, 1, {})
    yield b
    await b.app.stop()


async def init(broker, version=4) -> tuple[int, int]:
    resp = await broker.call("InitProducerId", version, {"transactional_id": TXN, "transaction_timeout_ms": 60000,
                                                         "producer_id": -1, "producer_epoch": -1})
    assert resp["error_code"] == 0
    return resp["producer_id"], resp["producer_epoch"]


async def add(broker, pid, epoch, version=3, partitions=(0,)) -> list:
    resp = await broker.call("AddPartitionsToTxn", version, {
        "transactional_id": TXN, "producer_id": pid, "producer_epoch": epoch,
        "topics": [{"name": TOPIC, "partitions": list(partitions)}]})
    return [(r["name"], p["partition_index"], p["partition_error_code"])
            for r in resp["results_by_topic"] for p in r["results_by_partition"]]


async def end(broker, pid, epoch, commit, version=3) -> int:
    return (await broker.call("EndTxn", version, {"transactional_id": TXN, "producer_id": pid,
                                                  "producer_epoch": epoch, "committed": commit}))["error_code"]


async def produce_txn(broker, pid, epoch, seq, *values) -> None:
    batch = build_batch([(None, v) for v in values], timestamps=broker.app.now_ms(), producer_id=pid,
                        producer_epoch=epoch, base_sequence=seq, attributes=TRANSACTIONAL_BIT)
    await broker.app.replicas.append(TOPIC, 0, memoryview(bytearray(batch)))


async def fetch(broker, isolation: int, version=12) -> dict:
    resp = await broker.call("Fetch", version, {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20, "isolation_level": isolation,
        "session_id": 0, "session_epoch": -1,
        "topics": [{"topic": TOPIC, "topic_id": b"\0" * 16, "partitions": [
            {"partition": 0, "current_leader_epoch": -1, "fetch_offset": 0, "last_fetched_epoch": -1,
             "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}],
        "forgotten_topics_data": [], "rack_id": ""})
    return resp["responses"][0]["partitions"][0]


def data_values(part: dict) -> list[bytes]:
    records = part["records"] or b""
    if isinstance(records, list):
        records = b"".join(bytes(c) for c in records)
    return [r.value for b in iter_batches(memoryview(records)) if not b.is_control for r in b.records()]


async def latest(broker, isolation: int) -> int:
    resp = await broker.call("ListOffsets", 7, {"replica_id": -1, "isolation_level": isolation, "topics": [
        {"name": TOPIC, "partitions": [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}]}]})
    return resp["topics"][0]["partitions"][0]["offset"]


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
async def test_find_coordinator_for_a_transactional_id(broker, version):
    body = {"key": TXN, "key_type": 1, "coordinator_keys": [TXN]}
    resp = await broker.call("FindCoordinator", version, body)
    found = resp["coordinators"][0] if version >= 4 else resp
    assert found["error_code"] == 0 and found["node_id"] == broker.app.node_id


async def test_read_committed_sees_below_the_stable_offset_and_the_aborted_list(broker):
    pid, epoch = await init(broker)
    assert await add(broker, pid, epoch) == [(TOPIC, 0, 0)]
    await produce_txn(broker, pid, epoch, 0, b"a", b"b")
    assert (await latest(broker, 0), await latest(broker, 1)) == (2, 0)
    committed = await fetch(broker, 1)
    assert (committed["high_watermark"], committed["last_stable_offset"]) == (2, 0)
    assert data_values(committed) == [] and committed["aborted_transactions"] == []
    uncommitted = await fetch(broker, 0)
    assert data_values(uncommitted) == [b"a", b"b"] and uncommitted["aborted_transactions"] is None
    assert await end(broker, pid, epoch, commit=False) == 0
    aborted = await fetch(broker, 1)
    assert aborted["last_stable_offset"] == aborted["high_watermark"] == 3  # past the ABORT marker
    assert aborted["aborted_transactions"] == [{"producer_id": pid, "first_offset": 0}]
    assert await latest(broker, 1) == 3
    await add(broker, pid, epoch)
    await produce_txn(broker, pid, epoch, 2, b"c")
    assert await end(broker, pid, epoch, commit=True) == 0
    await broker.restart()  # the index and producer state come back
    after = await fetch(broker, 1)
    assert after["last_stable_offset"] == 5
    assert after["aborted_transactions"] == [{"producer_id": pid, "first_offset": 0}]
    assert data_values(after) == [b"a", b"b", b"c"]  # the consumer drops a, b by the aborted list


@pytest.mark.parametrize("version, fenced", [(1, ErrorCode.INVALID_PRODUCER_EPOCH), (2, ErrorCode.PRODUCER_FENCED)])
async def test_an_older_epoch_is_fenced_with_the_code_its_version_knows(broker, version, fenced):
    pid, epoch = await init(broker)
    await init(broker)  # a new instance: epoch + 1
    assert await add(broker, pid, epoch, version=version) == [(TOPIC, 0, fenced)]
    assert await end(broker, pid, epoch, True, version=version) == fenced


async def test_unknown_partitions_and_ids(broker):
    pid, epoch = await init(broker)
    assert await add(broker, pid, epoch, partitions=(0, 9)) == [
        (TOPIC, 0, ErrorCode.OPERATION_NOT_ATTEMPTED), (TOPIC, 9, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]
    assert await add(broker, pid + 1, epoch) == [(TOPIC, 0, ErrorCode.INVALID_PRODUCER_ID_MAPPING)]
    assert await end(broker, pid, epoch, True) == ErrorCode.INVALID_TXN_STATE
    resp = await broker.call("InitProducerId", 4, {"transactional_id": TXN, "transaction_timeout_ms": 900001,
                                                   "producer_id": -1, "producer_epoch": -1})
    assert resp["error_code"] == ErrorCode.INVALID_TRANSACTION_TIMEOUT


async def committed_offset(broker) -> int:
    resp = await broker.call("OffsetFetch", 7, {"group_id": "g", "topics": [{"name": TOPIC, "partition_indexes": [0]}]})
    return resp["topics"][0]["partitions"][0]["committed_offset"]


async def stable_fetch_error(broker) -> int:
    """OffsetFetch v8 with require_stable (a read_committed consumer's, KIP-447)."""
    resp = await broker.call("OffsetFetch", 8, {"groups": [{"group_id": "g", "topics": [
        {"name": TOPIC, "partition_indexes": [0]}]}], "require_stable": True})
    return resp["groups"][0]["topics"][0]["partitions"][0]["error_code"]


@pytest.mark.parametrize("version", [0, 3, 4])
async def test_txn_offset_commit_is_visible_only_after_commit_also_across_a_restart(broker, version):
    pid, epoch = await init(broker)

    async def commit_offset(offset: int) -> int:
        resp = await broker.call("AddOffsetsToTxn", 3, {"transactional_id": TXN, "producer_id": pid,
                                                        "producer_epoch": epoch, "group_id": "g"})
        assert resp["error_code"] == 0
        resp = await broker.call("TxnOffsetCommit", version, {
            "transactional_id": TXN, "group_id": "g", "producer_id": pid, "producer_epoch": epoch,
            "generation_id": -1, "member_id": "", "group_instance_id": None,
            "topics": [{"name": TOPIC, "partitions": [{"partition_index": 0, "committed_offset": offset,
                                                       "committed_leader_epoch": -1, "committed_metadata": ""}]}]})
        return resp["topics"][0]["partitions"][0]["error_code"]

    resp = await broker.call("TxnOffsetCommit", version, {
        "transactional_id": TXN, "group_id": "g", "producer_id": pid, "producer_epoch": epoch,
        "topics": [{"name": TOPIC, "partitions": [{"partition_index": 0, "committed_offset": 1,
                                                   "committed_metadata": ""}]}]})
    # No AddOffsetsToTxn; v4+ clients know TRANSACTION_ABORTABLE (KIP-890), which Kafka answers them.
    assert resp["topics"][0]["partitions"][0]["error_code"] == (
        ErrorCode.TRANSACTION_ABORTABLE if version >= 4 else ErrorCode.INVALID_TXN_STATE)
    assert await commit_offset(7) == 0
    assert await committed_offset(broker) == -1
    assert await stable_fetch_error(broker) == ErrorCode.UNSTABLE_OFFSET_COMMIT
    assert await end(broker, pid, epoch, commit=True) == 0
    assert await stable_fetch_error(broker) == ErrorCode.NONE
    assert await committed_offset(broker) == 7
    assert await commit_offset(9) == 0
    assert await end(broker, pid, epoch, commit=False) == 0
    assert await committed_offset(broker) == 7
    assert await commit_offset(11) == 0
    await broker.restart()  # open across the restart: waits for its marker again
    assert await committed_offset(broker) == 7
    assert await end(broker, pid, epoch, commit=True) == 0
    assert await committed_offset(broker) == 11
    await broker.restart()
    assert await committed_offset(broker) == 11
