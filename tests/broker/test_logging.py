"""What the broker logs: every request traced at DEBUG (and nothing more at INFO), topic creation, deletion and
config changes at INFO, a client of another protocol named as such, and --log-format json."""

from __future__ import annotations

import asyncio
import json
import logging
import struct

import pytest

from kafkalite.config import BrokerConfig
from kafkalite.protocol import wire
from kafkalite.protocol.messages import APIS_BY_NAME
from kafkalite.server import JsonFormatter, Server
from rawclient import RawClient
from test_startup import FAST, launch  # noqa: F401  (launch is a fixture)

TOPIC = 2


@pytest.fixture
async def server(tmp_path):
    """A real Server on an ephemeral loopback port (the API that stays when the broker's insides change)."""
    config = BrokerConfig(listen_port=0, data_dir=str(tmp_path / "data"))
    config.set("offsets.topic.num.partitions", 1)
    server = Server(config)
    await server.start()
    yield server
    await server.stop(grace=1)


async def call(server, api_name: str, version: int, body: dict, client_id: str = "tester") -> dict:
    """One request over a new loopback connection; the decoded response."""
    api = APIS_BY_NAME[api_name]
    reader, writer = await asyncio.open_connection("127.0.0.1", server.config.listen_port)
    try:
        writer.write(wire.join(wire.encode_request(api.key, version, 7, client_id, body)))
        (size,) = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), 10))
        frame = await asyncio.wait_for(reader.readexactly(size), 10)
    finally:
        writer.close()
    correlation_id, response = wire.decode_response(api.key, version, memoryview(frame))
    assert correlation_id == 7
    return response


def messages(caplog, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


async def test_every_request_is_traced_at_debug_and_not_at_info(server, caplog):
    caplog.set_level(logging.INFO, logger="kafkalite.requests")
    await call(server, "ApiVersions", 3, {"client_software_name": "t", "client_software_version": "1"})
    assert messages(caplog, "kafkalite.requests") == []

    caplog.set_level(logging.DEBUG, logger="kafkalite.requests")
    await call(server, "Metadata", 12, {"topics": [{"name": "nope"}],
                                        "allow_auto_topic_creation": False})
    await call(server, "ApiVersions", 3, {"client_software_name": "t", "client_software_version": "1"})
    [metadata, api_versions] = [r for r in caplog.records if r.name == "kafkalite.requests"]
    assert metadata.levelno == logging.DEBUG
    assert metadata.getMessage().startswith(
        "Metadata v12 correlation 7 from client 'tester' at 127.0.0.1 (connection ")
    assert metadata.getMessage().endswith(" ms, errors UNKNOWN_TOPIC_OR_PARTITION")
    assert (metadata.api, metadata.api_version, metadata.client_id, metadata.peer, metadata.errors) == (
        "Metadata", 12, "tester", "127.0.0.1", ["UNKNOWN_TOPIC_OR_PARTITION"])
    assert metadata.latency_ms >= 0
    assert api_versions.getMessage().endswith(" ms, ok") and api_versions.errors == []


async def test_topic_creation_deletion_and_config_changes_are_logged_at_info(server, caplog):
    caplog.set_level(logging.INFO, logger="kafkalite.broker")
    await call(server, "CreateTopics", 7, {"topics": [
        {"name": "t", "num_partitions": 2, "replication_factor": 1, "assignments": [],
         "configs": [{"name": "retention.ms", "value": "1000"}]}], "timeout_ms": 1000, "validate_only": False})
    await call(server, "CreatePartitions", 3, {"topics": [{"name": "t", "count": 3, "assignments": None}],
                                               "timeout_ms": 1000, "validate_only": False})
    await call(server, "AlterConfigs", 2, {"resources": [{"resource_type": TOPIC, "resource_name": "t", "configs": [
        {"name": "cleanup.policy", "value": "compact"}]}], "validate_only": False})
    await call(server, "IncrementalAlterConfigs", 1, {"resources": [
        {"resource_type": TOPIC, "resource_name": "t",
         "configs": [{"name": "retention.ms", "config_operation": 0, "value": "2000"}]}], "validate_only": False})
    await call(server, "DeleteTopics", 6, {"topics": [{"name": "t"}], "timeout_ms": 1000})
    # validate_only changes nothing, so it logs nothing
    await call(server, "CreateTopics", 7, {"topics": [
        {"name": "u", "num_partitions": 1, "replication_factor": 1, "assignments": [], "configs": []}],
        "timeout_ms": 1000, "validate_only": True})
    infos = [r.getMessage() for r in caplog.records if r.name == "kafkalite.broker" and r.levelno == logging.INFO]
    assert [m for m in infos if "topic" in m] == [
        "created topic t with 2 partition(s), configs {'retention.ms': '1000'} (client 'tester' at 127.0.0.1)",
        "topic t now has 3 partitions (client 'tester' at 127.0.0.1)",
        "topic t config overrides changed from {'retention.ms': '1000'} to {'cleanup.policy': 'compact'}",
        "topic t config overrides changed from {'cleanup.policy': 'compact'} to "
        "{'cleanup.policy': 'compact', 'retention.ms': '2000'}",
        "deleted topic t (client 'tester' at 127.0.0.1)",
    ]


@pytest.mark.parametrize("first_bytes, said", [
    (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
     "an HTTP request (GET ...): this port speaks the Kafka protocol, not HTTP"),
    (b"POST /topics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
     "an HTTP request (POST ...): this port speaks the Kafka protocol, not HTTP"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
     "a TLS handshake: this port speaks the Kafka protocol in plain text (kafkalite has no TLS yet)"),
    (b"\x7f\xff\xff\xff", "frame size 2147483647 is outside 0..104857600"),  # just too large: said as such
])
async def test_a_client_of_another_protocol_is_named_and_closed(server, caplog, first_bytes, said):
    caplog.set_level(logging.INFO, logger="kafkalite.server")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.config.listen_port)
    for i in range(0, len(first_bytes), 3):  # in pieces: the 4 bytes may arrive in several reads
        writer.write(first_bytes[i:i + 3])
        await writer.drain()
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed, nothing sent back
    writer.close()
    [closing] = [m for m in messages(caplog, "kafkalite.server") if m.startswith("closing connection")]
    assert closing.endswith(f"from 127.0.0.1: {said}"), closing


def test_json_formatter_writes_one_object_with_the_extra_fields():
    record = logging.LogRecord("kafkalite.requests", logging.DEBUG, __file__, 1, "Fetch v%d", (12,), None)
    record.api, record.latency_ms = "Fetch", 0.5
    entry = json.loads(JsonFormatter().format(record))
    assert entry.pop("ts").endswith("Z")
    assert entry == {"level": "DEBUG", "logger": "kafkalite.requests", "message": "Fetch v12", "api": "Fetch",
                     "latency_ms": 0.5}


def test_log_format_json_makes_every_line_a_json_object(launch, tmp_path):  # noqa: F811
    broker = launch("--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"), "--log-format", "json",
                    "--log-level", "DEBUG", *FAST)
    started = json.loads(broker.wait_for("listening on"))
    port = int(started["message"].split("listening on 127.0.0.1:")[1].split(" ")[0])
    with RawClient(port) as client:
        client.request("ApiVersions", 3, {"client_software_name": "t", "client_software_version": "1"})
    trace = json.loads(broker.wait_for('"api": "ApiVersions"'))
    assert trace["level"] == "DEBUG" and trace["logger"] == "kafkalite.requests"
    assert trace["client_id"] == "raw" and trace["peer"] == "127.0.0.1" and trace["errors"] == []
    assert broker.stop() == 0
    entries = [json.loads(line) for line in broker.lines]  # every line, to the last one
    assert all({"ts", "level", "logger", "message"} <= entry.keys() for entry in entries)
    assert entries[-1]["message"] == "stopped cleanly"
