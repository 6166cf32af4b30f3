"""AddPartitionsToTxn v4-5, the batched form brokers send the coordinator (KIP-890 part 1): several transactions
in one request, VerifyOnly checks that add nothing, and v0-3 (the client's form) unchanged beside them. The
expected codes are those Apache Kafka 4.1.1 answered to the same requests."""

from __future__ import annotations

import pytest

from kafkalite.protocol.errors import ErrorCode
from kafkalite.txn import TransactionCoordinator, TxnConfig
from txn_inproc import running_broker

TOPIC = "t"
IN, OUT = (TOPIC, 0), (TOPIC, 1)


# ------------------------------------------------------------------ the pure coordinator


def test_verify_answers_per_partition_and_refuses_a_wrong_producer():
    c = TransactionCoordinator(TxnConfig(num_partitions=1, max_timeout_ms=60_000))
    c.load_partition(0, [], 0)
    assert c.verify_partitions("tx", 7, 0, {IN}) == {IN: ErrorCode.INVALID_PRODUCER_ID_MAPPING}  # unknown id
    c.apply(c.init_producer_id(0, "tx", 10_000, new_producer_id=7))
    assert c.verify_partitions("tx", 7, 0, {IN}) == {IN: ErrorCode.TRANSACTION_ABORTABLE}  # no transaction yet
    c.apply(c.add_partitions(1, "tx", 7, 0, {IN}))
    assert c.verify_partitions("tx", 7, 0, {IN, OUT}) == {IN: ErrorCode.NONE, OUT: ErrorCode.TRANSACTION_ABORTABLE}
    assert c.transactions["tx"].partitions == {IN}  # verifying added nothing
    assert c.verify_partitions("tx", 8, 0, {IN}) == {IN: ErrorCode.INVALID_PRODUCER_ID_MAPPING}
    assert c.verify_partitions("tx", 7, 1, {IN}) == {IN: ErrorCode.PRODUCER_FENCED}
    c.apply(c.end_txn(2, "tx", 7, 0, commit=False))
    assert c.verify_partitions("tx", 7, 0, {IN}) == {IN: ErrorCode.CONCURRENT_TRANSACTIONS}  # PrepareAbort
    c.apply(c.complete(3, "tx"))
    assert c.verify_partitions("tx", 7, 0, {IN}) == {IN: ErrorCode.TRANSACTION_ABORTABLE}  # ended: not in one


# ------------------------------------------------------------------ through the handler


@pytest.fixture
async def broker(tmp_path):
    async with running_broker(str(tmp_path / "data"), {TOPIC: 2}) as b:
        yield b


def txn(txn_id: str, pid: int, epoch: int, verify_only: bool, *partitions: tuple[str, int]) -> dict:
    topics: dict[str, list[int]] = {}
    for name, index in partitions:
        topics.setdefault(name, []).append(index)
    return {"transactional_id": txn_id, "producer_id": pid, "producer_epoch": epoch, "verify_only": verify_only,
            "topics": [{"name": name, "partitions": indexes} for name, indexes in topics.items()]}


async def batched(broker, version: int, *transactions: dict) -> dict[str, dict[tuple[str, int], int]]:
    """A v4+ request; each transaction's partition codes, checking the response's shape on the way."""
    resp = await broker.call("AddPartitionsToTxn", version, {"transactions": list(transactions)})
    assert resp["error_code"] == 0 and resp["results_by_topic"] == []
    assert [r["transactional_id"] for r in resp["results_by_transaction"]] == [
        t["transactional_id"] for t in transactions]
    return {r["transactional_id"]: {(t["name"], p["partition_index"]): p["partition_error_code"]
                                    for t in r["topic_results"] for p in t["results_by_partition"]}
            for r in resp["results_by_transaction"]}


async def partitions_of(broker, txn_id: str) -> list[dict]:
    resp = await broker.call("DescribeTransactions", 0, {"transactional_ids": [txn_id]})
    return resp["transaction_states"][0]["topics"]


@pytest.mark.parametrize("version", [4, 5])
async def test_verify_only_checks_membership_without_adding(broker, version):
    pid, epoch = await broker.init("open")
    assert await broker.add("open", pid, epoch, TOPIC, 0) == {0}
    codes = await batched(broker, version, txn("open", pid, epoch, True, IN, OUT))
    assert codes == {"open": {IN: ErrorCode.NONE, OUT: ErrorCode.TRANSACTION_ABORTABLE}}
    assert await partitions_of(broker, "open") == [{"topic": TOPIC, "partitions": [0]}]


@pytest.mark.parametrize("version", [4, 5])
async def test_each_transaction_of_a_batch_is_answered_on_its_own(broker, version):
    open_pid, open_epoch = await broker.init("open")
    idle_pid, idle_epoch = await broker.init("idle")
    assert await broker.add("open", open_pid, open_epoch, TOPIC, 0) == {0}
    codes = await batched(broker, version,
                          txn("open", open_pid, open_epoch + 1, True, IN),  # an epoch the coordinator never gave
                          txn("unknown", open_pid, open_epoch, True, IN),
                          txn("idle", idle_pid, idle_epoch, False, OUT),  # a real add
                          txn("", 1, 0, True, IN),
                          txn("with-missing", open_pid, open_epoch, True, IN, ("missing", 0)))
    assert codes == {
        "open": {IN: ErrorCode.PRODUCER_FENCED},
        "unknown": {IN: ErrorCode.INVALID_PRODUCER_ID_MAPPING},
        "idle": {OUT: ErrorCode.NONE},
        "": {IN: ErrorCode.INVALID_REQUEST},
        "with-missing": {IN: ErrorCode.OPERATION_NOT_ATTEMPTED, ("missing", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION},
    }
    assert await partitions_of(broker, "idle") == [{"topic": TOPIC, "partitions": [1]}]
    assert await partitions_of(broker, "open") == [{"topic": TOPIC, "partitions": [0]}]


async def test_an_empty_batch_gets_an_empty_answer(broker):
    # (Kafka 4.1.1 never answers this one: it replies once every transaction has, and there are none)
    assert await batched(broker, 4) == {}


async def test_the_batched_form_may_name_internal_topics_the_clients_may_not(broker):
    pid, epoch = await broker.init("tx")
    assert await broker.add("tx", pid, epoch, "__consumer_offsets", 0) == {ErrorCode.TOPIC_AUTHORIZATION_FAILED}
    codes = await batched(broker, 4, txn("tx", pid, epoch, False, ("__consumer_offsets", 0)))
    assert codes == {"tx": {("__consumer_offsets", 0): ErrorCode.NONE}}


async def test_a_batched_add_that_the_coordinator_refuses_gives_every_partition_its_error(broker):
    pid, epoch = await broker.init("tx")
    await broker.init("tx")  # bumps the epoch: the first one is fenced
    codes = await batched(broker, 4, txn("tx", pid, epoch, False, IN, OUT))
    assert codes == {"tx": {IN: ErrorCode.PRODUCER_FENCED, OUT: ErrorCode.PRODUCER_FENCED}}


@pytest.mark.parametrize("version", [0, 1, 2, 3])
async def test_the_clients_form_is_unchanged(broker, version):
    pid, epoch = await broker.init("tx")
    resp = await broker.call("AddPartitionsToTxn", version, {
        "transactional_id": "tx", "producer_id": pid, "producer_epoch": epoch,
        "topics": [{"name": TOPIC, "partitions": [1]}, {"name": "missing", "partitions": [0]}]})
    assert resp["results_by_topic"] == [
        {"name": TOPIC, "results_by_partition": [{"partition_index": 1,
                                                  "partition_error_code": ErrorCode.OPERATION_NOT_ATTEMPTED}]},
        {"name": "missing", "results_by_partition": [{"partition_index": 0,
                                                      "partition_error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}]}]
    assert await broker.add("tx", pid, epoch, TOPIC, 1) == {0}
    fenced = await broker.call("AddPartitionsToTxn", version, {
        "transactional_id": "tx", "producer_id": pid, "producer_epoch": epoch + 1,
        "topics": [{"name": TOPIC, "partitions": [0]}]})
    code = fenced["results_by_topic"][0]["results_by_partition"][0]["partition_error_code"]
    assert code == (ErrorCode.PRODUCER_FENCED if version >= 2 else ErrorCode.INVALID_PRODUCER_EPOCH)
