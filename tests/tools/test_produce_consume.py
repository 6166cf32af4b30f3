"""`kafkalite produce` and `kafkalite consume` round trips, in-process (test_interrupt.py runs them as
subprocesses)."""

import json

from brokerproc import BrokerProcess
from toolrun import run_kafkalite


def test_keys_values_round_trip(tool, topic_name):
    name = topic_name()
    tool("topics", "create", name, "--partitions", "1")
    produced = tool("produce", name, "--key-separator", ":", input="k1:v1\nk2:v2:with colon\nk3:\n")
    assert (produced.code, produced.out) == (0, "")

    consumed = tool("consume", name, "--from-beginning", "--print-key", "--max-messages", "3")
    assert consumed.code == 0, consumed.err
    assert consumed.out == "k1\tv1\nk2\tv2:with colon\nk3\t\n"
    assert "Processed a total of 3 messages" in consumed.err

    with_sep = tool("consume", name, "--from-beginning", "--print-key", "--key-separator", "=",
                         "--max-messages", "1")
    assert with_sep.out == "k1=v1\n"


def test_values_only_compressed_acks_1_and_json(tool, topic_name):
    name = topic_name()
    tool("topics", "create", name, "--partitions", "2")
    lines = [f"line {i}" for i in range(200)]
    produced = tool("produce", name, "--compression", "zstd", "--acks", "1", input="\n".join(lines) + "\n")
    assert produced.code == 0, produced.err

    consumed = tool("consume", name, "--from-beginning", "--format", "json", "--max-messages", "200")
    assert consumed.code == 0, consumed.err
    records = [json.loads(line) for line in consumed.out.splitlines()]
    assert sorted(r["value"] for r in records) == sorted(lines)
    assert {r["key"] for r in records} == {None}
    assert set(records[0]) == {"topic", "partition", "offset", "timestamp", "key", "value", "headers"}


def test_missing_key_separator_is_a_usage_error(tool, topic_name):
    name = topic_name()
    tool("topics", "create", name)
    result = tool("produce", name, "-K", ":", input="a:1\nno separator here\n")
    assert result.code == 2
    assert "line 2 has no key separator ':'" in result.err


def test_consume_unknown_topic(tool):
    result = tool("consume", "no-such-topic", "--max-messages", "1")
    assert result.code == 4
    assert result.err == "kafkalite: topic 'no-such-topic' does not exist (UNKNOWN_TOPIC_OR_PARTITION)\n"


def test_consume_timeout_on_an_empty_topic(tool, topic_name):
    name = topic_name()
    tool("topics", "create", name)
    result = tool("consume", name, "--from-beginning", "--timeout", "0.5")
    assert (result.code, result.out) == (0, "")
    assert "Processed a total of 0 messages" in result.err


def test_group_commits_what_was_printed(tool, topic_name):
    name = topic_name()
    tool("topics", "create", name)
    tool("produce", name, input="".join(f"m{i}\n" for i in range(5)))
    first = tool("consume", name, "--group", f"{name}-g", "--from-beginning", "--max-messages", "2")
    assert first.out == "m0\nm1\n", first.err
    second = tool("consume", name, "--group", f"{name}-g", "--max-messages", "3")
    assert second.out == "m2\nm3\nm4\n", second.err


def test_produce_unknown_topic_without_auto_creation(tmp_path):
    proc = BrokerProcess(str(tmp_path / "data"), "--set", "auto.create.topics.enable=false").start()
    try:
        result = run_kafkalite("produce", "no-such-topic", input="x\n", bootstrap=proc.bootstrap)
        assert result.code == 4
        assert result.err == "kafkalite: topic 'no-such-topic' does not exist (UNKNOWN_TOPIC_OR_PARTITION)\n"
    finally:
        proc.kill()
