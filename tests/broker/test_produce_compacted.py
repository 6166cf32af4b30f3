"""Produce to a compacted topic: like Kafka, the broker refuses a batch holding a record without a key
(INVALID_RECORD, with one record error per unkeyed record) and stores nothing of it; keyed batches, compressed
or not, are stored. Found by the Java Admin interop test against Apache Kafka."""

from __future__ import annotations

import pytest

from kafkalite.app import App as Broker
from kafkalite.broker.context import RequestContext
from kafkalite.broker.registry import HANDLERS
from kafkalite.config import BrokerConfig
from kafkalite.protocol import compression, wire
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.messages import APIS_BY_NAME
from kafkalite.protocol.record_batch import build_batch

import kafkalite.broker.handlers  # noqa: F401  (registers the handlers)

PRODUCE = APIS_BY_NAME["Produce"]


@pytest.fixture
async def broker(tmp_path):
    config = BrokerConfig(data_dir=str(tmp_path / "data"))
    config.set("offsets.topic.num.partitions", 1)
    b = Broker(config)
    await b.start()
    await b.metadata.create_topic("compacted", 1, {"cleanup.policy": "compact"})
    await b.metadata.create_topic("plain", 1, {})
    yield b
    await b.stop()


async def produce(broker, topic: str, batch: bytes, version: int = 9) -> dict:
    body = {"transactional_id": None, "acks": 1, "timeout_ms": 5000,
            "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": batch}]}]}
    frame = wire.join(wire.encode_request(PRODUCE.key, version, 1, "test", body))
    _, request = wire.decode_request(memoryview(bytearray(frame))[4:])  # writable, as the server reads it
    ctx = RequestContext(broker.services, PRODUCE.key, version, 1, "test", "127.0.0.1", 1)
    response = await HANDLERS[PRODUCE.key](ctx, request)
    encoded = wire.join(wire.encode_response(PRODUCE.key, version, 1, response))
    _, decoded = wire.decode_response(PRODUCE.key, version, memoryview(encoded)[4:])
    return decoded["responses"][0]["partition_responses"][0]


@pytest.mark.parametrize("codec", [compression.NONE, compression.GZIP])
async def test_compacted_topic_refuses_unkeyed_records(broker, codec):
    mixed = build_batch([(b"k1", b"v1"), (None, b"v2"), (b"k3", b"v3"), (None, b"v4")], codec=codec)
    refused = await produce(broker, "compacted", mixed)
    assert refused["error_code"] == ErrorCode.INVALID_RECORD
    assert [e["batch_index"] for e in refused["record_errors"]] == [1, 3]
    assert "without key" in refused["record_errors"][0]["batch_index_error_message"]
    assert "without key" in refused["error_message"]
    assert broker.replicas.replica("compacted", 0).log.log_end_offset == 0, "nothing of a refused batch is stored"

    keyed = await produce(broker, "compacted", build_batch([(b"k1", b"v1"), (b"k2", None)], codec=codec))
    assert (keyed["error_code"], keyed["base_offset"], keyed["record_errors"]) == (0, 0, [])


async def test_unkeyed_records_are_fine_elsewhere(broker):
    accepted = await produce(broker, "plain", build_batch([(None, b"v1"), (None, b"v2")]))
    assert (accepted["error_code"], accepted["base_offset"]) == (0, 0)
