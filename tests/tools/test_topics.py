"""`kafkalite topics ...` (in-process) and the error conventions every tool shares (as real subprocesses)."""

import socket

from toolrun import run_kafkalite, run_parallel


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_create_list_describe_alter_delete(tool, topic_name):
    name = topic_name()
    created = tool("topics", "create", name, "--partitions", "3", "--config", "retention.ms=60000")
    assert (created.code, created.out) == (0, f"Created topic {name}.\n")

    assert name in tool("topics", "list").out.splitlines()

    described = tool("topics", "describe", name)
    assert described.code == 0
    lines = described.out.splitlines()
    assert lines[0] == f"Topic: {name}\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: retention.ms=60000"
    assert lines[1:] == [f"\tTopic: {name}\tPartition: {p}\tLeader: 0\tReplicas: 0\tIsr: 0" for p in range(3)]

    altered = tool("topics", "alter", name, "--config", "cleanup.policy=compact",
                        "--delete-config", "retention.ms", "--partitions", "4")
    assert altered.code == 0, altered.err
    described = tool("topics", "describe", name).out.splitlines()
    assert described[0].endswith("PartitionCount: 4\tReplicationFactor: 1\tConfigs: cleanup.policy=compact")

    assert tool("topics", "delete", name).code == 0
    assert name not in tool("topics", "list").out.splitlines()


def test_create_existing_topic(tool, topic_name):
    name = topic_name()
    assert tool("topics", "create", name).code == 0
    again = tool("topics", "create", name)
    assert again.code == 7
    assert "already exists" in again.err and "TOPIC_ALREADY_EXISTS" in again.err
    assert tool("topics", "create", name, "--if-not-exists").code == 0


def test_unknown_topic_is_a_sentence_and_exit_code_4(broker):
    commands = [("topics", "describe", "no-such-topic"), ("topics", "delete", "no-such-topic"),
                ("topics", "alter", "no-such-topic", "--config", "retention.ms=1"),
                ("groups", "reset-offsets", "g", "--topic", "no-such-topic", "--to-earliest")]
    results = run_parallel(*commands, ("topics", "delete", "no-such-topic", "--if-exists"),
                           bootstrap=broker.bootstrap)
    for args, result in zip(commands, results):
        assert result.code == 4, (args, result)
        assert result.err == "kafkalite: topic 'no-such-topic' does not exist (UNKNOWN_TOPIC_OR_PARTITION)\n"
    assert results[-1].code == 0


def test_bad_arguments_exit_2_and_refusals_exit_1(broker, topic_name):
    bad_pair, nothing_to_alter, unknown_action, bad_config = run_parallel(
        ("topics", "create", topic_name(), "--config", "retention.ms"), ("topics", "alter", topic_name()),
        ("topics", "frobnicate"), ("topics", "create", topic_name(), "--config", "no.such.config=1"),
        bootstrap=broker.bootstrap)
    assert bad_pair.code == 2 and "is not of the form NAME=VALUE" in bad_pair.err
    assert nothing_to_alter.code == 2 and "nothing to alter" in nothing_to_alter.err
    assert unknown_action.code == 2
    assert bad_config.code == 1
    assert bad_config.err.startswith("kafkalite: creating topic") and "INVALID_CONFIG" in bad_config.err


def test_connection_refused_every_tool():
    bootstrap = f"127.0.0.1:{closed_port()}"
    commands = [("topics", "list", "-b", bootstrap), ("groups", "list", "-b", bootstrap),
                ("consume", "t", "-b", bootstrap), ("produce", "t", "-b", bootstrap), ("nc", bootstrap, "ApiVersions")]
    for args, result in zip(commands, run_parallel(*commands)):
        assert result.code == 3, (args, result)
        assert f"kafkalite: cannot connect to {bootstrap}: connection refused" in result.err, args
        assert "Traceback" not in result.err


def test_help_documents_exit_codes():
    result = run_kafkalite("--help")
    assert result.code == 0
    assert "exit codes of the client tools:" in result.out
    for line in ("3  cannot connect to the broker", "4  no such topic, partition or group", "5  not authorized"):
        assert line in result.out


def test_replication_factor_is_passed_to_the_broker(tool, topic_name):
    name = topic_name()
    assert tool("topics", "create", name, "--replication-factor", "1").code == 0
    refused = tool("topics", "create", topic_name(), "--replication-factor", "3")
    assert refused.code == 1
    assert refused.err.startswith("kafkalite: creating topic")
    assert refused.err.endswith("(INVALID_REPLICATION_FACTOR)\n")
    assert "\n" not in refused.err.rstrip("\n")  # one line, no traceback
    assert tool("topics", "create", topic_name(), "-r", "0").code == 2


def test_describe_all_configs_with_source_and_default(broker, tool, topic_name):
    name = topic_name()
    tool("topics", "create", name, "--partitions", "1", "--config", "retention.ms=60000")
    plain = tool("topics", "describe", name)
    described = tool("topics", "describe", name, "--all-configs")
    assert described.code == 0, described.err
    lines = described.out.splitlines()
    assert lines[:2] == plain.out.splitlines()  # today's output first, unchanged
    table = [line.split() for line in lines[3:] if line]
    assert table[0] == ["CONFIG", "VALUE", "SOURCE", "DEFAULT"]
    rows = {row[0]: row[1:] for row in table[1:]}
    assert rows["retention.ms"] == ["60000", "DYNAMIC_TOPIC_CONFIG", "604800000"]
    assert rows["cleanup.policy"] == ["delete", "DEFAULT_CONFIG:log.cleanup.policy", "delete"]
    assert rows["segment.bytes"] == ["1073741824", "DEFAULT_CONFIG:log.segment.bytes", "1073741824"]
    from kafkalite.log.config import TOPIC_CONFIGS

    assert sorted(rows) == sorted(spec.name for spec in TOPIC_CONFIGS)  # every config the broker has
