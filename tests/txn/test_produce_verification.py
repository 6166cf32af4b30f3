"""Produce-side transaction verification (KIP-890 part 1, transaction.partition.verification.enable): a producer's
first transactional batch on a partition is appended only once the coordinator confirms the partition is in its
ongoing transaction. The codes are those Apache Kafka 4.1 answers at Produce v3-10 (see also
tests/differential/test_txn_flows.py)."""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace

import pytest

from brokerproc import BrokerProcess
from kafkalite.broker.transactions import RemoteVerification
from kafkalite.metadata.image import BrokerInfo
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.record_batch import TRANSACTIONAL_BIT, build_batch
from kafkalite.txn import TRANSACTION_STATE_TOPIC
from rawclient import RawClient
from inproc import call_handler
from txn_inproc import running_broker

TOPIC = "t"
TID = "tx"


@pytest.fixture
async def broker(tmp_path):
    async with running_broker(str(tmp_path / "data"), {TOPIC: 2}) as b:
        yield b


async def produce(broker, index: int, pid: int, epoch: int, seq: int, transactional: bool = True,
                  transactional_id: str | None = TID) -> dict:
    """One batch to TOPIC-index through the Produce v9 handler; its partition response."""
    batch = build_batch([(None, b"v%d" % seq)], timestamps=broker.clock.now_ms(), producer_id=pid,
                        producer_epoch=epoch, base_sequence=seq, attributes=TRANSACTIONAL_BIT if transactional else 0)
    resp = await call_produce(broker, 9, {"transactional_id": transactional_id, "acks": -1, "timeout_ms": 30_000,
                                            "topic_data": [{"name": TOPIC, "partition_data": [
                                                {"index": index, "records": batch}]}]})
    return resp["responses"][0]["partition_responses"][0]


async def call_produce(broker, version: int, body: dict) -> dict:
    return await call_handler(broker.app.services, "Produce", version, body)


def log_end(broker, index: int) -> int:
    return broker.app.replicas.leader(TOPIC, index).log.log_end_offset


def count_verifications(broker, monkeypatch) -> list:
    """The (transactional id, partitions) of each verification the coordinator is asked for."""
    calls = []
    service = broker.app.transactions
    real = service.verify_for_produce

    async def counting(transactional_id, producer_id, producer_epoch, partitions):
        calls.append((transactional_id, set(partitions)))
        return await real(transactional_id, producer_id, producer_epoch, partitions)

    monkeypatch.setattr(service, "verify_for_produce", counting)
    return calls


async def test_a_partition_outside_the_transaction_is_refused_and_nothing_appended(broker):
    pid, epoch = await broker.init(TID)
    assert await broker.add(TID, pid, epoch, TOPIC, 0) == {0}
    outside = await produce(broker, 1, pid, epoch, 0)
    assert (outside["error_code"], outside["base_offset"]) == (ErrorCode.INVALID_TXN_STATE, -1)
    assert log_end(broker, 1) == 0
    inside = await produce(broker, 0, pid, epoch, 0)
    assert (inside["error_code"], inside["base_offset"]) == (0, 0)


async def test_no_transaction_at_all_is_refused(broker):
    pid, epoch = await broker.init(TID)
    assert (await produce(broker, 0, pid, epoch, 0))["error_code"] == ErrorCode.INVALID_TXN_STATE
    assert log_end(broker, 0) == 0


async def test_verification_happens_once_per_partition_per_transaction(broker, monkeypatch):
    calls = count_verifications(broker, monkeypatch)
    pid, epoch = await broker.init(TID)
    assert await broker.add(TID, pid, epoch, TOPIC, 0) == {0}
    for seq in range(3):
        assert (await produce(broker, 0, pid, epoch, seq))["error_code"] == 0
    assert calls == [(TID, {(TOPIC, 0)})]  # later batches of the open transaction skip it
    assert await broker.end(TID, pid, epoch, commit=True) == 0
    await broker.app.transactions.settle_background()
    assert await broker.add(TID, pid, epoch, TOPIC, 0) == {0}
    assert (await produce(broker, 0, pid, epoch, 3))["error_code"] == 0
    assert len(calls) == 2  # the next transaction is verified again: the marker closed the first


async def test_a_producer_fenced_by_a_newer_epoch_is_invalid_producer_epoch(broker):
    pid, old_epoch = await broker.init(TID)
    _, new_epoch = await broker.init(TID)
    assert new_epoch == old_epoch + 1
    assert await broker.add(TID, pid, new_epoch, TOPIC, 0) == {0}
    stale = await produce(broker, 0, pid, old_epoch, 0)
    assert stale["error_code"] == ErrorCode.INVALID_PRODUCER_EPOCH
    assert log_end(broker, 0) == 0


async def test_an_unknown_producer_id_is_refused_as_the_coordinator_says(broker):
    pid, epoch = await broker.init(TID)
    assert await broker.add(TID, pid, epoch, TOPIC, 0) == {0}
    other = await produce(broker, 0, pid + 1, epoch, 0)
    assert other["error_code"] == ErrorCode.INVALID_PRODUCER_ID_MAPPING
    assert log_end(broker, 0) == 0


async def test_a_coordinator_that_cannot_answer_is_not_enough_replicas(broker):
    """A retriable error the produce clients retry without a metadata refresh, as Kafka answers."""
    pid, epoch = await broker.init(TID)
    assert await broker.add(TID, pid, epoch, TOPIC, 0) == {0}
    service = broker.app.transactions
    service.unload_partition(service.coordinator.partition_for(TID))  # NOT_COORDINATOR here, and no other broker
    unverified = await produce(broker, 0, pid, epoch, 0)
    assert unverified["error_code"] == ErrorCode.NOT_ENOUGH_REPLICAS
    assert log_end(broker, 0) == 0


async def test_non_transactional_batches_and_disabled_verification_are_not_verified(broker, monkeypatch):
    calls = count_verifications(broker, monkeypatch)
    pid, epoch = await broker.init(TID)
    idempotent = await produce(broker, 0, pid, epoch, 0, transactional=False)
    assert idempotent["error_code"] == 0
    broker.app.config.set("transaction.partition.verification.enable", False)
    unchecked = await produce(broker, 1, pid, epoch, 0)  # no transaction: appended, as before KIP-890
    assert (unchecked["error_code"], log_end(broker, 1)) == (0, 1)
    assert calls == []


# ------------------------------------------------------------------ cluster mode: asking another broker's coordinator


class FakeMetadata:
    """The one thing RemoteVerification reads of the image: who leads the transactional id's partition."""

    def __init__(self, leader: BrokerInfo | None, partitions: int = 50):
        self.image = self
        self.leader = leader
        self.partitions = partitions

    def topic(self, name: str):
        assert name == TRANSACTION_STATE_TOPIC
        return None if self.leader is None else SimpleNamespace(partitions=list(range(self.partitions)))

    def leader_of(self, name: str, index: int) -> BrokerInfo | None:
        assert name == TRANSACTION_STATE_TOPIC and 0 <= index < self.partitions
        return self.leader


@pytest.fixture(scope="module")
def coordinator_broker(tmp_path_factory):
    """A standalone broker with TID's transaction open on TOPIC-0 (not TOPIC-1): (its BrokerInfo, pid, epoch)."""
    broker = BrokerProcess(str(tmp_path_factory.mktemp("coordinator"))).start()
    try:
        with RawClient(broker.port) as client:
            created = client.request("CreateTopics", 7, {"topics": [{
                "name": TOPIC, "num_partitions": 2, "replication_factor": 1, "assignments": [], "configs": []}],
                "timeout_ms": 30_000, "validate_only": False})
            assert created["topics"][0]["error_code"] == 0
            deadline = time.monotonic() + 60
            while True:  # the first call creates __transaction_state: COORDINATOR_NOT_AVAILABLE meanwhile
                init = client.request("InitProducerId", 4, {"transactional_id": TID, "transaction_timeout_ms": 60_000,
                                                            "producer_id": -1, "producer_epoch": -1})
                if init["error_code"] == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)  # polling the broker's readiness, with a deadline
            assert init["error_code"] == 0, init
            pid, epoch = init["producer_id"], init["producer_epoch"]
            added = client.request("AddPartitionsToTxn", 3, {"transactional_id": TID, "producer_id": pid,
                                                             "producer_epoch": epoch,
                                                             "topics": [{"name": TOPIC, "partitions": [0]}]})
            assert added["results_by_topic"][0]["results_by_partition"][0]["partition_error_code"] == 0
        yield BrokerInfo(2, "127.0.0.1", broker.port), pid, epoch
    finally:
        broker.stop()


async def test_remote_verification_asks_the_coordinators_broker(coordinator_broker):
    info, pid, epoch = coordinator_broker
    remote = RemoteVerification(FakeMetadata(info), node_id=1)
    try:
        inside, outside = (TOPIC, 0), (TOPIC, 1)
        assert await remote.verify(TID, pid, epoch, {inside, outside}) == {
            inside: ErrorCode.NONE, outside: ErrorCode.TRANSACTION_ABORTABLE}
        assert await remote.verify(TID, pid, epoch + 1, {inside}) == {inside: ErrorCode.PRODUCER_FENCED}
        assert await remote.verify(TID, pid + 1, epoch, {inside}) == {inside: ErrorCode.INVALID_PRODUCER_ID_MAPPING}
    finally:
        remote.close()


async def test_remote_verification_without_an_answer(coordinator_broker):
    info, pid, epoch = coordinator_broker
    tp = (TOPIC, 0)
    assert await RemoteVerification(FakeMetadata(None), 1).verify(TID, pid, epoch, {tp}) == {
        tp: ErrorCode.COORDINATOR_NOT_AVAILABLE}  # no __transaction_state (or no leader) yet
    assert await RemoteVerification(FakeMetadata(info), info.node_id).verify(TID, pid, epoch, {tp}) == {
        tp: ErrorCode.NOT_COORDINATOR}  # this broker leads it but has not loaded it
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        gone = BrokerInfo(3, "127.0.0.1", unused.getsockname()[1])
        remote = RemoteVerification(FakeMetadata(gone), 1, timeout_s=5)
        try:
            assert await remote.verify(TID, pid, epoch, {tp}) == {tp: ErrorCode.NETWORK_EXCEPTION}
        finally:
            remote.close()


async def test_a_transaction_that_ends_while_its_partition_is_verified_does_not_reopen(broker, monkeypatch):
    """The coordinator says yes, but before the answer is used the transaction is aborted (the producer's own abort,
    at its epoch, racing a slow batch) and its marker written here: the batch is refused (Kafka's verification
    guard), so it cannot open a transaction that no coordinator will ever end and hold the last stable offset back
    for good."""
    from kafkalite.broker.transactions import marker_batch

    pid, epoch = await broker.init(TID)
    assert await broker.add(TID, pid, epoch, TOPIC, 0) == {0}
    service = broker.app.transactions
    real = service.verify_for_produce

    async def abort_meanwhile(transactional_id, producer_id, producer_epoch, partitions):
        codes = await real(transactional_id, producer_id, producer_epoch, partitions)
        await broker.app.replicas.write_marker(TOPIC, 0, marker_batch(pid, epoch, False, broker.clock.now_ms()))
        return codes

    monkeypatch.setattr(service, "verify_for_produce", abort_meanwhile)
    late = await produce(broker, 0, pid, epoch, 0)
    assert late["error_code"] == ErrorCode.INVALID_TXN_STATE
    log = broker.app.replicas.leader(TOPIC, 0).log
    assert log.log_end_offset == 1, "only the marker is stored"
    assert log.first_unstable_offset() is None


async def test_verification_is_switched_off_at_run_time_as_in_kafka(broker):
    """transaction.partition.verification.enable is a dynamic broker config in Kafka: IncrementalAlterConfigs
    changes it for the next Produce, and DescribeConfigs shows it as not read-only."""
    pid, epoch = await broker.init(TID)
    assert (await produce(broker, 0, pid, epoch, 0))["error_code"] == ErrorCode.INVALID_TXN_STATE
    altered = await broker.call("IncrementalAlterConfigs", 1, {"validate_only": False, "resources": [
        {"resource_type": 4, "resource_name": "", "configs": [
            {"name": "transaction.partition.verification.enable", "config_operation": 0, "value": "false"}]}]})
    assert altered["responses"][0]["error_code"] == 0, altered
    assert (await produce(broker, 0, pid, epoch, 0))["error_code"] == 0
    described = await broker.call("DescribeConfigs", 4, {"resources": [
        {"resource_type": 4, "resource_name": "",
         "configuration_keys": ["transaction.partition.verification.enable"]}],
        "include_synonyms": False, "include_documentation": False})
    [entry] = described["results"][0]["configs"]
    assert (entry["value"], entry["read_only"]) == ("false", False)
