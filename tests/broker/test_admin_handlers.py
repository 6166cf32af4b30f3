"""The admin handlers, called directly on a Broker over a temporary data directory.

Requests go through the codec (encode, decode) so every field a version lacks has its default, and responses
are encoded and decoded again, so a field a handler gets wrong for a version fails here too.
"""

from __future__ import annotations

import time

import pytest

from kafkalite.app import App as Broker
from kafkalite.group import OFFSETS_TOPIC
from kafkalite.broker.context import RequestContext
from kafkalite.broker.registry import HANDLERS
from kafkalite.config import BrokerConfig
from kafkalite.protocol import wire
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.messages import APIS_BY_NAME
from kafkalite.protocol.record_batch import build_batch

import kafkalite.broker.handlers  # noqa: F401  (registers the handlers)

TOPIC, BROKER = 2, 4
DYNAMIC_TOPIC, STATIC_BROKER, DEFAULT = 1, 4, 5


class Running:
    """The broker under test; restart() stops it and opens a new one on the same data directory."""

    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.broker: Broker | None = None

    async def start(self, **settings) -> Broker:
        config = BrokerConfig(data_dir=self.data_dir)
        config.set("offsets.topic.num.partitions", 1)  # 50 partitions per test would only cost time
        for name, value in settings.items():
            config.set(name.replace("_", "."), value)
        self.broker = Broker(config)
        await self.broker.start()
        return self.broker

    async def restart(self) -> Broker:
        await self.broker.stop()
        return await self.start()

    async def call(self, api_name: str, version: int, body: dict) -> dict:
        api = APIS_BY_NAME[api_name]
        frame = wire.join(wire.encode_request(api.key, version, 1, "test", body))
        _, request = wire.decode_request(memoryview(frame)[4:])
        ctx = RequestContext(self.broker.services, api.key, version, 1, "test", "127.0.0.1", 1)
        response = await HANDLERS[api.key](ctx, request)
        encoded = wire.join(wire.encode_response(api.key, version, 1, response))
        _, decoded = wire.decode_response(api.key, version, memoryview(encoded)[4:])
        return decoded


@pytest.fixture
async def running(tmp_path):
    r = Running(str(tmp_path / "data"))
    await r.start()
    yield r
    await r.broker.stop()


async def create_topic(broker, name: str, partitions: int = 1, configs: dict | None = None) -> None:
    await broker.metadata.create_topic(name, partitions, configs or {})


async def produce(broker, name: str, count: int, partition: int = 0) -> None:
    now = int(time.time() * 1000)
    for i in range(count):
        await broker.replicas.append_internal(name, partition, build_batch([(None, b"v%d" % i)], timestamps=now))


# ---------------------------------------------------------------------------------------------- CreatePartitions


def create_partitions_request(*topics, validate_only=False):
    return {"topics": [{"name": n, "count": c, "assignments": a} for n, c, a in topics], "timeout_ms": 1000,
            "validate_only": validate_only}


@pytest.mark.parametrize("version", [0, 3])
async def test_create_partitions_grows_the_topic_and_survives_a_restart(running, version):
    await create_topic(running.broker, "t", 1)
    resp = await running.call("CreatePartitions", version, create_partitions_request(("t", 3, None)))
    assert resp["results"] == [{"name": "t", "error_code": 0, "error_message": None}]
    assert running.broker.logs.topic("t").partitions == 3
    broker = await running.restart()
    assert broker.logs.topic("t").partitions == 3
    assert broker.logs.partition("t", 2) is not None


@pytest.mark.parametrize("version", [0, 3])
async def test_create_partitions_validate_only_changes_nothing(running, version):
    await create_topic(running.broker, "t", 1)
    resp = await running.call("CreatePartitions", version,
                              create_partitions_request(("t", 4, None), validate_only=True))
    assert resp["results"][0]["error_code"] == 0
    assert running.broker.logs.topic("t").partitions == 1


async def test_create_partitions_accepts_assignments_naming_this_node(running):
    await create_topic(running.broker, "t", 1)
    resp = await running.call("CreatePartitions", 3,
                              create_partitions_request(("t", 3, [{"broker_ids": [0]}, {"broker_ids": [0]}])))
    assert resp["results"][0]["error_code"] == 0
    assert running.broker.logs.topic("t").partitions == 3


@pytest.mark.parametrize("version", [0, 3])
@pytest.mark.parametrize("topic, count, assignments, error", [
    ("t", 1, None, ErrorCode.INVALID_PARTITIONS),  # no increase
    ("t", 0, None, ErrorCode.INVALID_PARTITIONS),  # fewer
    ("nope", 5, None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    ("t", 3, [{"broker_ids": [1]}, {"broker_ids": [0]}], ErrorCode.INVALID_REPLICA_ASSIGNMENT),  # another broker
    ("t", 3, [{"broker_ids": [0]}], ErrorCode.INVALID_REPLICA_ASSIGNMENT),  # too few assignments
    ("t", 2, [{"broker_ids": [0, 0]}], ErrorCode.INVALID_REPLICA_ASSIGNMENT),  # two replicas
    (OFFSETS_TOPIC, 5, None, ErrorCode.INVALID_TOPIC_EXCEPTION),
])
async def test_create_partitions_errors(running, version, topic, count, assignments, error):
    await create_topic(running.broker, "t", 1)
    resp = await running.call("CreatePartitions", version, create_partitions_request((topic, count, assignments)))
    result = resp["results"][0]
    assert result["error_code"] == error
    assert result["error_message"]
    assert running.broker.logs.topic("t").partitions == 1


async def test_create_partitions_duplicate_topic_is_an_invalid_request(running):
    await create_topic(running.broker, "t", 1)
    resp = await running.call("CreatePartitions", 3, create_partitions_request(("t", 2, None), ("t", 3, None)))
    assert [r["error_code"] for r in resp["results"]] == [ErrorCode.INVALID_REQUEST] * 2
    assert running.broker.logs.topic("t").partitions == 1


# ---------------------------------------------------------------------------------------------- DeleteRecords


def delete_records_request(name, *offsets):
    return {"topics": [{"name": name, "partitions": [{"partition_index": p, "offset": o} for p, o in offsets]}],
            "timeout_ms": 1000}


@pytest.mark.parametrize("version", [0, 2])
async def test_delete_records_moves_the_log_start_and_survives_a_restart(running, version):
    await create_topic(running.broker, "t", 2)
    await produce(running.broker, "t", 5)
    resp = await running.call("DeleteRecords", version, delete_records_request("t", (0, 3)))
    assert resp["topics"][0]["partitions"] == [{"partition_index": 0, "low_watermark": 3, "error_code": 0}]
    # An offset below the log start changes nothing and reports the current low watermark.
    resp = await running.call("DeleteRecords", version, delete_records_request("t", (0, 1)))
    assert resp["topics"][0]["partitions"][0]["low_watermark"] == 3
    broker = await running.restart()
    assert broker.logs.partition("t", 0).log_start_offset == 3


@pytest.mark.parametrize("version", [0, 2])
async def test_delete_records_minus_one_means_the_high_watermark(running, version):
    await create_topic(running.broker, "t", 1)
    await produce(running.broker, "t", 4)
    resp = await running.call("DeleteRecords", version, delete_records_request("t", (0, -1)))
    assert resp["topics"][0]["partitions"][0] == {"partition_index": 0, "low_watermark": 4, "error_code": 0}


@pytest.mark.parametrize("version", [0, 2])
async def test_delete_records_errors(running, version):
    await create_topic(running.broker, "t", 1)
    await create_topic(running.broker, "compacted", 1, {"cleanup.policy": "compact"})
    await produce(running.broker, "t", 2)
    resp = await running.call("DeleteRecords", version, delete_records_request("t", (0, 3), (0, -5), (1, 0)))
    assert [(p["error_code"], p["low_watermark"]) for p in resp["topics"][0]["partitions"]] == [
        (ErrorCode.OFFSET_OUT_OF_RANGE, -1), (ErrorCode.OFFSET_OUT_OF_RANGE, -1),
        (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1)]
    resp = await running.call("DeleteRecords", version, delete_records_request("nope", (0, 0)))
    assert resp["topics"][0]["partitions"][0]["error_code"] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    resp = await running.call("DeleteRecords", version, delete_records_request("compacted", (0, 0)))
    assert resp["topics"][0]["partitions"][0]["error_code"] == ErrorCode.POLICY_VIOLATION
    resp = await running.call("DeleteRecords", version, delete_records_request(OFFSETS_TOPIC, (0, 0)))
    assert resp["topics"][0]["partitions"][0]["error_code"] == ErrorCode.INVALID_TOPIC_EXCEPTION
    assert running.broker.logs.partition("t", 0).log_start_offset == 0


# ---------------------------------------------------------------------------------------------- DescribeConfigs


def describe_request(*resources, synonyms=False, documentation=False):
    return {"resources": [{"resource_type": t, "resource_name": n, "configuration_keys": k} for t, n, k in resources],
            "include_synonyms": synonyms, "include_documentation": documentation}


def by_name(result) -> dict:
    return {c["name"]: c for c in result["configs"]}


@pytest.mark.parametrize("version", [1, 4])
async def test_describe_topic_configs(running, version):
    await create_topic(running.broker, "t", 1, {"retention.ms": "1000", "cleanup.policy": "compact"})
    resp = await running.call("DescribeConfigs", version, describe_request((TOPIC, "t", None), synonyms=True))
    result = resp["results"][0]
    assert (result["error_code"], result["resource_type"], result["resource_name"]) == (0, TOPIC, "t")
    configs = by_name(result)
    assert {"retention.ms", "segment.bytes", "cleanup.policy", "max.message.bytes"} <= set(configs)
    retention = configs["retention.ms"]
    assert (retention["value"], retention["config_source"], retention["read_only"], retention["is_sensitive"]) == (
        "1000", DYNAMIC_TOPIC, False, False)
    assert [(s["name"], s["value"], s["source"]) for s in retention["synonyms"]] == [
        ("retention.ms", "1000", DYNAMIC_TOPIC), ("log.retention.ms", "604800000", DEFAULT)]
    segment = configs["segment.bytes"]
    assert (segment["value"], segment["config_source"]) == ("1073741824", DEFAULT)
    assert configs["cleanup.policy"]["value"] == "compact"
    if version >= 3:
        assert retention["config_type"] == 5  # LONG
        assert configs["cleanup.policy"]["config_type"] == 7  # LIST
        assert segment["config_type"] == 3  # INT
        assert retention["documentation"] is None  # not asked for


@pytest.mark.parametrize("version", [1, 4])
async def test_describe_configs_selected_keys_without_synonyms(running, version):
    await create_topic(running.broker, "t", 1)
    resp = await running.call("DescribeConfigs", version,
                              describe_request((TOPIC, "t", ["retention.bytes", "no.such.config"])))
    configs = resp["results"][0]["configs"]
    assert [c["name"] for c in configs] == ["retention.bytes"]  # unknown names are left out, as Kafka does
    assert configs[0]["synonyms"] == []


async def test_describe_configs_documentation_from_v3(running):
    await create_topic(running.broker, "t", 1)
    resp = await running.call("DescribeConfigs", 4,
                              describe_request((TOPIC, "t", ["retention.ms"]), documentation=True))
    assert resp["results"][0]["configs"][0]["documentation"]


@pytest.mark.parametrize("version", [1, 4])
async def test_describe_broker_configs(running, version):
    for name in ("0", ""):
        resp = await running.call("DescribeConfigs", version, describe_request((BROKER, name, None), synonyms=True))
        result = resp["results"][0]
        assert result["error_code"] == 0
        configs = by_name(result)
        assert configs["num.partitions"]["value"] == "1"
        assert configs["num.partitions"]["config_source"] == DEFAULT
        assert configs["num.partitions"]["read_only"] is True
        assert configs["log.retention.ms"]["read_only"] is False  # changeable at run time
        assert configs["auto.create.topics.enable"]["value"] == "true"
        # Set before start in the fixture: differs from Kafka's default.
        offsets = configs["offsets.topic.num.partitions"]
        assert (offsets["value"], offsets["config_source"]) == ("1", STATIC_BROKER)
        assert [(s["value"], s["source"]) for s in offsets["synonyms"]] == [("1", STATIC_BROKER), ("50", DEFAULT)]
        if version >= 3:
            assert configs["auto.create.topics.enable"]["config_type"] == 1  # BOOLEAN
            assert configs["log.retention.ms"]["config_type"] == 5  # LONG
            assert configs["num.partitions"]["config_type"] == 3  # INT


async def test_describe_topic_config_follows_a_static_broker_setting(tmp_path):
    r = Running(str(tmp_path / "data"))
    broker = await r.start(log_retention_ms=5000)
    try:
        await create_topic(broker, "t", 1)
        resp = await r.call("DescribeConfigs", 4, describe_request((TOPIC, "t", ["retention.ms"]), synonyms=True))
        entry = resp["results"][0]["configs"][0]
        assert (entry["value"], entry["config_source"]) == ("5000", STATIC_BROKER)
        assert [(s["name"], s["source"]) for s in entry["synonyms"]] == [
            ("log.retention.ms", STATIC_BROKER), ("log.retention.ms", DEFAULT)]
    finally:
        await broker.stop()


@pytest.mark.parametrize("version", [1, 4])
async def test_describe_configs_errors(running, version):
    resp = await running.call("DescribeConfigs", version, describe_request(
        (TOPIC, "nope", None), (BROKER, "7", None), (BROKER, "x", None), (3, "g", None)))
    assert [(r["error_code"], r["configs"]) for r in resp["results"]] == [
        (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, []), (ErrorCode.INVALID_REQUEST, []), (ErrorCode.INVALID_REQUEST, []),
        (ErrorCode.INVALID_REQUEST, [])]
    assert all(r["error_message"] for r in resp["results"])


# ---------------------------------------------------------------------------------------------- AlterConfigs


def alter_request(*resources, validate_only=False):
    return {"resources": [{"resource_type": t, "resource_name": n,
                           "configs": [{"name": k, "value": v} for k, v in configs.items()]}
                          for t, n, configs in resources],
            "validate_only": validate_only}


@pytest.mark.parametrize("version", [0, 2])
async def test_alter_configs_replaces_the_whole_override_set_and_survives_a_restart(running, version):
    await create_topic(running.broker, "t", 1, {"retention.ms": "1000", "segment.bytes": "100000"})
    resp = await running.call("AlterConfigs", version, alter_request((TOPIC, "t", {"retention.bytes": "2048"})))
    assert resp["responses"] == [
        {"error_code": 0, "error_message": None, "resource_type": TOPIC, "resource_name": "t"}]
    assert running.broker.logs.topic("t").configs == {"retention.bytes": "2048"}
    assert running.broker.logs.partition("t", 0).config.retention_bytes == 2048
    broker = await running.restart()
    assert broker.logs.topic("t").configs == {"retention.bytes": "2048"}
    assert broker.logs.partition("t", 0).config.retention_ms == 604800000


@pytest.mark.parametrize("version", [0, 2])
async def test_alter_configs_validate_only_changes_nothing(running, version):
    await create_topic(running.broker, "t", 1, {"retention.ms": "1000"})
    resp = await running.call("AlterConfigs", version,
                              alter_request((TOPIC, "t", {"retention.ms": "5"}), validate_only=True))
    assert resp["responses"][0]["error_code"] == 0
    assert running.broker.logs.topic("t").configs == {"retention.ms": "1000"}


@pytest.mark.parametrize("version", [0, 2])
@pytest.mark.parametrize("validate_only", [False, True])
async def test_alter_configs_topic_errors(running, version, validate_only):
    await create_topic(running.broker, "t", 1, {"retention.ms": "1000"})
    await create_topic(running.broker, "t2", 1)
    resp = await running.call("AlterConfigs", version, alter_request(
        (TOPIC, "t", {"retention.ms": "soon"}),
        (TOPIC, "t2", {"no.such.config": "1"}),
        (TOPIC, "nope", {"retention.ms": "1"}),
        (3, "g", {}),
        validate_only=validate_only))
    codes = [(r["error_code"], bool(r["error_message"])) for r in resp["responses"]]
    assert codes == [(ErrorCode.INVALID_CONFIG, True), (ErrorCode.INVALID_CONFIG, True),
                     (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, True), (ErrorCode.INVALID_REQUEST, True)]
    assert "retention.ms" in resp["responses"][0]["error_message"]
    assert running.broker.logs.topic("t").configs == {"retention.ms": "1000"}


async def test_alter_configs_duplicate_resource_is_an_invalid_request(running):
    await create_topic(running.broker, "t", 1)
    resp = await running.call("AlterConfigs", 2, alter_request(
        (TOPIC, "t", {"retention.ms": "1"}), (TOPIC, "t", {"retention.ms": "2"})))
    assert [r["error_code"] for r in resp["responses"]] == [ErrorCode.INVALID_REQUEST] * 2
    assert running.broker.logs.topic("t").configs == {}


@pytest.mark.parametrize("version", [0, 2])
async def test_alter_broker_dynamic_setting_becomes_the_topic_default(running, version):
    await create_topic(running.broker, "t", 1)
    await create_topic(running.broker, "own", 1, {"retention.ms": "1000"})
    resp = await running.call("AlterConfigs", version, alter_request((BROKER, "0", {"log.retention.ms": "3600000"})))
    assert resp["responses"][0]["error_code"] == 0
    assert running.broker.config["log.retention.ms"] == 3600000
    assert running.broker.logs.partition("t", 0).config.retention_ms == 3600000
    assert running.broker.logs.partition("own", 0).config.retention_ms == 1000  # its override still wins
    resp = await running.call("DescribeConfigs", 4, describe_request((TOPIC, "t", ["retention.ms"])))
    assert resp["results"][0]["configs"][0]["value"] == "3600000"


@pytest.mark.parametrize("version", [0, 2])
async def test_alter_broker_errors(running, version):
    for name, configs, code, words in [
        ("", {"num.partitions": "3"}, ErrorCode.INVALID_REQUEST, "dynamically"),  # read only at run time
        ("0", {"no.such.setting": "1"}, ErrorCode.INVALID_REQUEST, "no.such.setting"),
        ("5", {"log.retention.ms": "1"}, ErrorCode.INVALID_REQUEST, "broker id"),  # another broker
        ("0", {"log.segment.bytes": "big"}, ErrorCode.INVALID_CONFIG, "log.segment.bytes"),
        # A value the log refuses (segment.bytes must be at least 14) is refused as the broker default too.
        ("0", {"log.segment.bytes": "3"}, ErrorCode.INVALID_CONFIG, "segment.bytes"),
    ]:
        resp = await running.call("AlterConfigs", version, alter_request((BROKER, name, configs)))
        assert resp["responses"][0]["error_code"] == code, configs
        assert words in resp["responses"][0]["error_message"]
    assert running.broker.config["num.partitions"] == 1
    assert running.broker.config["log.segment.bytes"] == 1073741824


async def test_alter_broker_validate_only_changes_nothing(running):
    resp = await running.call("AlterConfigs", 2, alter_request((BROKER, "0", {"max.connections": "7"}),
                                                                validate_only=True))
    assert resp["responses"][0]["error_code"] == 0
    assert running.broker.config["max.connections"] == 10000


# ---------------------------------------------------------------------------------------------- IncrementalAlterConfigs

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def incremental_request(*resources, validate_only=False):
    return {"resources": [{"resource_type": t, "resource_name": n,
                           "configs": [{"name": k, "config_operation": op, "value": v} for k, op, v in ops]}
                          for t, n, ops in resources],
            "validate_only": validate_only}


@pytest.mark.parametrize("version", [0, 1])
async def test_incremental_set_and_delete_keep_other_overrides_and_survive_a_restart(running, version):
    await create_topic(running.broker, "t", 1, {"retention.ms": "1000", "segment.bytes": "100000"})
    resp = await running.call("IncrementalAlterConfigs", version, incremental_request(
        (TOPIC, "t", [("retention.bytes", SET, "2048"), ("segment.bytes", DELETE, None)])))
    assert resp["responses"] == [
        {"error_code": 0, "error_message": None, "resource_type": TOPIC, "resource_name": "t"}]
    assert running.broker.logs.topic("t").configs == {"retention.ms": "1000", "retention.bytes": "2048"}
    broker = await running.restart()
    assert broker.logs.topic("t").configs == {"retention.ms": "1000", "retention.bytes": "2048"}


@pytest.mark.parametrize("version", [0, 1])
async def test_incremental_append_and_subtract_a_list(running, version):
    await create_topic(running.broker, "t", 1)
    resp = await running.call("IncrementalAlterConfigs", version, incremental_request(
        (TOPIC, "t", [("cleanup.policy", APPEND, "compact")])))
    assert resp["responses"][0]["error_code"] == 0
    assert running.broker.logs.topic("t").configs == {"cleanup.policy": "delete,compact"}
    assert running.broker.logs.partition("t", 0).config.compact
    resp = await running.call("IncrementalAlterConfigs", version, incremental_request(
        (TOPIC, "t", [("cleanup.policy", SUBTRACT, "delete")])))
    assert resp["responses"][0]["error_code"] == 0
    assert running.broker.logs.topic("t").configs == {"cleanup.policy": "compact"}
    # Subtracting the last item leaves no policy at all, which the log refuses.
    resp = await running.call("IncrementalAlterConfigs", version, incremental_request(
        (TOPIC, "t", [("cleanup.policy", SUBTRACT, "compact")])))
    assert resp["responses"][0]["error_code"] == ErrorCode.INVALID_CONFIG


@pytest.mark.parametrize("version", [0, 1])
async def test_incremental_validate_only_changes_nothing(running, version):
    await create_topic(running.broker, "t", 1)
    resp = await running.call("IncrementalAlterConfigs", version, incremental_request(
        (TOPIC, "t", [("retention.ms", SET, "5")]), validate_only=True))
    assert resp["responses"][0]["error_code"] == 0
    assert running.broker.logs.topic("t").configs == {}


@pytest.mark.parametrize("version", [0, 1])
async def test_incremental_errors(running, version):
    await create_topic(running.broker, "t", 1)
    resp = await running.call("IncrementalAlterConfigs", version, incremental_request(
        (TOPIC, "t", [("retention.ms", APPEND, "5")]),  # not a list
        (TOPIC, "nope", [("retention.ms", SET, "5")]),
        (TOPIC, "t", [("retention.ms", SET, None)]),
        (TOPIC, "t", [("retention.ms", 9, "5")]),
        (TOPIC, "t", [("retention.ms", SET, "-7")]),
        (BROKER, "0", [("log.retention.ms", APPEND, "5")]),
    ))
    codes = [r["error_code"] for r in resp["responses"]]
    # The same topic named four times is a duplicate resource: each of those is refused as a whole.
    assert codes[1] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert codes[0] == codes[2] == codes[3] == codes[4] == ErrorCode.INVALID_REQUEST
    for ops, code in [
        ([("retention.ms", APPEND, "5")], ErrorCode.INVALID_CONFIG),
        ([("retention.ms", SET, None)], ErrorCode.INVALID_REQUEST),
        ([("retention.ms", 9, "5")], ErrorCode.INVALID_REQUEST),
        ([("retention.ms", SET, "-7")], ErrorCode.INVALID_CONFIG),
        ([("retention.ms", SET, "5"), ("retention.ms", DELETE, None)], ErrorCode.INVALID_REQUEST),
    ]:
        resp = await running.call("IncrementalAlterConfigs", version, incremental_request((TOPIC, "t", ops)))
        assert resp["responses"][0]["error_code"] == code, ops
        assert resp["responses"][0]["error_message"]
    resp = await running.call("IncrementalAlterConfigs", version, incremental_request(
        (BROKER, "0", [("log.retention.ms", APPEND, "5")])))
    assert resp["responses"][0]["error_code"] == ErrorCode.INVALID_CONFIG
    assert running.broker.logs.topic("t").configs == {}


@pytest.mark.parametrize("version", [0, 1])
async def test_incremental_broker_set_and_delete(running, version):
    resp = await running.call("IncrementalAlterConfigs", version, incremental_request(
        (BROKER, "0", [("max.connections", SET, "12")])))
    assert resp["responses"][0]["error_code"] == 0
    assert running.broker.config["max.connections"] == 12
    resp = await running.call("IncrementalAlterConfigs", version, incremental_request(
        (BROKER, "", [("max.connections", DELETE, None)])))
    assert resp["responses"][0]["error_code"] == 0
    assert running.broker.config["max.connections"] == 10000


# ---------------------------------------------------------------------------------------------- InitProducerId


def init_pid_request(transactional_id=None, producer_id=-1, producer_epoch=-1):
    return {"transactional_id": transactional_id, "transaction_timeout_ms": 60000, "producer_id": producer_id,
            "producer_epoch": producer_epoch}


@pytest.mark.parametrize("version", [0, 4])
async def test_init_producer_id_gives_fresh_ids_also_across_a_restart(running, version):
    first = await running.call("InitProducerId", version, init_pid_request())
    second = await running.call("InitProducerId", version, init_pid_request())
    assert (first["error_code"], first["producer_epoch"]) == (0, 0)
    assert (second["error_code"], second["producer_epoch"]) == (0, 0)
    assert first["producer_id"] >= 0 and second["producer_id"] != first["producer_id"]
    await running.restart()
    third = await running.call("InitProducerId", version, init_pid_request())
    assert third["producer_id"] not in (first["producer_id"], second["producer_id"])


async def test_init_producer_id_after_an_error_gives_a_new_id(running):
    first = await running.call("InitProducerId", 4, init_pid_request())
    again = await running.call("InitProducerId", 4, init_pid_request(None, first["producer_id"], 0))
    assert again["error_code"] == 0
    assert again["producer_id"] != first["producer_id"] and again["producer_epoch"] == 0


@pytest.mark.parametrize("version", [0, 4])
async def test_init_producer_id_with_a_transactional_id_bumps_its_epoch(running, version):
    first = await running.call("InitProducerId", version, init_pid_request("txn-1"))
    again = await running.call("InitProducerId", version, init_pid_request("txn-1"))
    assert (first["error_code"], first["producer_epoch"]) == (0, 0) and first["producer_id"] >= 0
    assert (again["error_code"], again["producer_id"], again["producer_epoch"]) == (0, first["producer_id"], 1)
    resp = await running.call("InitProducerId", version, init_pid_request(""))
    assert resp["error_code"] == ErrorCode.INVALID_REQUEST


async def test_init_producer_id_needs_id_and_epoch_together(running):
    for pid, epoch in [(5, -1), (-1, 3)]:
        resp = await running.call("InitProducerId", 4, init_pid_request(None, pid, epoch))
        assert (resp["error_code"], resp["producer_id"]) == (ErrorCode.INVALID_REQUEST, -1)


# ---------------------------------------------------------------------------------------------- DescribeCluster


@pytest.mark.parametrize("version", [0, 1])
async def test_describe_cluster(running, version):
    broker = running.broker
    resp = await running.call("DescribeCluster", version, {"include_cluster_authorized_operations": False})
    assert resp["error_code"] == 0
    assert resp["cluster_id"] == broker.cluster_id and resp["cluster_id"]
    assert resp["controller_id"] == broker.node_id
    assert resp["brokers"] == [{"broker_id": broker.node_id, "host": broker.config.host,
                                "port": broker.config.port, "rack": None}]
    assert resp["cluster_authorized_operations"] == -(2**31)
    if version >= 1:
        assert resp["endpoint_type"] == 1
    resp = await running.call("DescribeCluster", version, {"include_cluster_authorized_operations": True})
    assert resp["cluster_authorized_operations"] & (1 << 8)  # DESCRIBE


async def test_describe_cluster_controller_endpoint_is_a_mismatch(running):
    resp = await running.call("DescribeCluster", 1, {"include_cluster_authorized_operations": False,
                                                     "endpoint_type": 2})
    assert resp["error_code"] == ErrorCode.MISMATCHED_ENDPOINT_TYPE
    resp = await running.call("DescribeCluster", 1, {"include_cluster_authorized_operations": False,
                                                     "endpoint_type": 9})
    assert resp["error_code"] == ErrorCode.UNSUPPORTED_ENDPOINT_TYPE


# ---------------------------------------------------------------------------------------------- OffsetForLeaderEpoch


def epoch_request(name, *partitions):
    return {"replica_id": -1, "topics": [{"topic": name, "partitions": [
        {"partition": p, "current_leader_epoch": current, "leader_epoch": epoch} for p, current, epoch in partitions]}]}


@pytest.mark.parametrize("version", [2, 4])
async def test_offset_for_leader_epoch(running, version):
    await create_topic(running.broker, "t", 2)
    await produce(running.broker, "t", 3)
    resp = await running.call("OffsetForLeaderEpoch", version, epoch_request(
        "t", (0, -1, 0), (0, 0, 0), (1, 0, 0), (0, 0, 1), (0, 0, -1), (0, 1, 0), (0, -2, 0), (2, 0, 0)))
    got = [(p["error_code"], p["leader_epoch"], p["end_offset"]) for p in resp["topics"][0]["partitions"]]
    assert got == [
        (0, 0, 3),  # no current epoch given: no fencing
        (0, 0, 3),
        (0, 0, 0),  # an empty partition ends at 0
        (0, -1, -1),  # an epoch newer than any the log has seen
        (0, -1, -1),  # undefined epoch
        (ErrorCode.UNKNOWN_LEADER_EPOCH, -1, -1),  # the client knows a newer epoch than this leader
        (ErrorCode.FENCED_LEADER_EPOCH, -1, -1),  # the client is behind the leader's epoch
        (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
    ]
    resp = await running.call("OffsetForLeaderEpoch", version, epoch_request("nope", (0, -1, 0)))
    assert resp["topics"][0]["partitions"][0]["error_code"] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
