"""An in-process standalone broker on the injected ManualClock for the transaction admin tests: requests go
through the codec at the version under test and straight to the handler."""

from __future__ import annotations

import contextlib

import kafkalite.broker.handlers  # noqa: F401  (registers the handlers)
from kafkalite.app import App
from kafkalite.clock import ManualClock
from kafkalite.config import BrokerConfig
from kafkalite.protocol.record_batch import TRANSACTIONAL_BIT, build_batch
from inproc import call_handler

START_MS = 1_700_000_000_000
TIMEOUT_MS = 60_000


class InProcessBroker:
    def __init__(self, data_dir: str):
        self.clock = ManualClock(START_MS)
        config = BrokerConfig(data_dir=data_dir)
        config.set("offsets.topic.num.partitions", 1)
        config.set("transaction.state.log.num.partitions", 3)
        config.set("kafkalite.durability", "never")
        self.app = App(config, self.clock)

    async def call(self, api_name: str, version: int, body: dict) -> dict:
        return await call_handler(self.app.services, api_name, version, body)

    async def init(self, transactional_id: str) -> tuple[int, int]:
        resp = await self.call("InitProducerId", 4, {"transactional_id": transactional_id,
                                                     "transaction_timeout_ms": TIMEOUT_MS, "producer_id": -1,
                                                     "producer_epoch": -1})
        assert resp["error_code"] == 0, resp
        return resp["producer_id"], resp["producer_epoch"]

    async def add(self, transactional_id: str, pid: int, epoch: int, topic: str, *partitions: int) -> set[int]:
        """AddPartitionsToTxn v3 (the client's form); the set of error codes it answered."""
        resp = await self.call("AddPartitionsToTxn", 3, {
            "transactional_id": transactional_id, "producer_id": pid, "producer_epoch": epoch,
            "topics": [{"name": topic, "partitions": list(partitions)}]})
        return {p["partition_error_code"] for r in resp["results_by_topic"] for p in r["results_by_partition"]}

    async def end(self, transactional_id: str, pid: int, epoch: int, commit: bool) -> int:
        return (await self.call("EndTxn", 3, {"transactional_id": transactional_id, "producer_id": pid,
                                              "producer_epoch": epoch, "committed": commit}))["error_code"]

    async def produce_txn(self, topic: str, index: int, pid: int, epoch: int, seq: int, *values: bytes) -> None:
        batch = build_batch([(None, v) for v in values], timestamps=self.clock.now_ms(), producer_id=pid,
                            producer_epoch=epoch, base_sequence=seq, attributes=TRANSACTIONAL_BIT)
        await self.app.replicas.append(topic, index, memoryview(bytearray(batch)))


@contextlib.asynccontextmanager
async def running_broker(data_dir: str, topics: dict[str, int]):
    """An InProcessBroker, started with these topics (name -> partitions), stopped afterwards."""
    broker = InProcessBroker(data_dir)
    await broker.app.start()
    try:
        for name, partitions in topics.items():
            await broker.app.metadata.create_topic(name, partitions, {})
        yield broker
    finally:
        await broker.app.stop()
