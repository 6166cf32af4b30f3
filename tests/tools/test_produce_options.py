"""`kafkalite produce` options, run in-process against the folder's broker: headers, null values
(tombstones), --file and --max-record-bytes. What was written is read back with consume --format json."""

import json


def records(tool, name: str, count: int) -> list[dict]:
    result = tool("consume", name, "--offset", "beginning", "--format", "json", "--max-messages", str(count))
    assert result.code == 0, result.err
    return [json.loads(line) for line in result.out.splitlines()]


def test_headers_on_every_record(tool, topic_name):
    name = topic_name()
    tool("topics", "create", name)
    produced = tool("produce", name, "-H", "trace=abc", "--header", "kind=a=b", "-H", "trace=def", input="x\ny\n")
    assert produced.code == 0, produced.err
    assert [r["headers"] for r in records(tool, name, 2)] == [[["trace", "abc"], ["kind", "a=b"], ["trace", "def"]]] * 2
    bad = tool("produce", name, "-H", "novalue", input="z\n")
    assert bad.code == 2 and "--header 'novalue' is not of the form NAME=VALUE" in bad.err


def test_headers_on_each_line(tool, topic_name):
    name = topic_name()
    tool("topics", "create", name)
    produced = tool("produce", name, "--parse-headers", "-K", ":", "--null-marker", "NULL", "-H", "all=1",
                    input="a:1,b:2\tk:v\n\tk2:no headers\nn:NULL\tk3:v3\n")
    assert produced.code == 0, produced.err
    assert [(r["headers"], r["key"], r["value"]) for r in records(tool, name, 3)] == [
        ([["all", "1"], ["a", "1"], ["b", "2"]], "k", "v"), ([["all", "1"]], "k2", "no headers"),
        ([["all", "1"], ["n", None]], "k3", "v3")]
    for line, message in [("k:v\n", "line 1 has no tab after its headers"),
                          ("a\tk:v\n", "line 1: header 'a' is not NAME:VALUE")]:
        bad = tool("produce", name, "--parse-headers", "-K", ":", input=line)
        assert bad.code == 2 and message in bad.err, bad


def test_null_values_for_tombstones(tool, topic_name):
    name = topic_name()
    tool("topics", "create", name, "--config", "cleanup.policy=compact")
    marked = tool("produce", name, "-K", ":", "--null-marker", "NULL", input="k1:v1\nk1:NULL\nk2:\n")
    assert marked.code == 0, marked.err
    empty = tool("produce", name, "-K", ":", "-Z", input="k3:\nk4:v4\n")
    assert empty.code == 0, empty.err
    assert [(r["key"], r["value"]) for r in records(tool, name, 5)] == [
        ("k1", "v1"), ("k1", None), ("k2", ""), ("k3", None), ("k4", "v4")]
    # A null key too (a compacted topic refuses records without a key, as Kafka does: use a plain one).
    plain = topic_name()
    tool("topics", "create", plain)
    assert tool("produce", plain, "-K", ":", "--null-marker", "NULL", input="NULL:v2\n").code == 0
    assert [(r["key"], r["value"]) for r in records(tool, plain, 1)] == [(None, "v2")]
    refused = tool("produce", name, "-K", ":", "--null-marker", "NULL", input="NULL:v2\n")
    assert refused.code != 0 and "INVALID_RECORD" in refused.err


def test_lines_from_a_file(tool, topic_name, tmp_path):
    name = topic_name()
    tool("topics", "create", name)
    path = tmp_path / "lines.txt"
    path.write_bytes(b"first\r\nsecond\nlast without newline")
    produced = tool("produce", name, "--file", str(path), input="not this\n")
    assert produced.code == 0, produced.err
    assert [r["value"] for r in records(tool, name, 3)] == ["first", "second", "last without newline"]
    missing = tool("produce", name, "--file", str(tmp_path / "nope"))
    assert (missing.code, missing.err) == (2, f"kafkalite: cannot read --file {tmp_path / 'nope'}: "
                                              "No such file or directory\n")


def test_record_size_limit(tool, topic_name):
    name = topic_name()
    tool("topics", "create", name)
    too_big = tool("produce", name, "--max-record-bytes", "100", input="small\n" + "x" * 200 + "\nnever\n")
    assert too_big.code == 2
    assert "line 2 makes a record of 221 bytes, more than --max-record-bytes (100)" in too_big.err
    assert [r["value"] for r in records(tool, name, 1)] == ["small"]  # what came before was still sent
    # A larger limit than the client's default lets a 2 MB record through (the topic allows 3 MB).
    tool("topics", "alter", name, "--config", "max.message.bytes=3000000")
    large = tool("produce", name, "--max-record-bytes", "2500000", input="y" * 2_000_000 + "\n")
    assert large.code == 0, large.err
    default = tool("produce", name, input="z" * 1_100_000 + "\n")
    assert default.code == 2 and "more than --max-record-bytes (1048576)" in default.err
