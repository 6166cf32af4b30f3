"""`kafkalite consume` options, run in-process against the folder's broker: partitions and offsets, kcat's
format letters, several topics and a pattern, and bytes that are not text."""

import asyncio
import json
import re
import threading

import pytest

from toolrun import produce_records


@pytest.fixture
def two_partitions(broker, tool, topic_name):
    """A topic with records v0..v4 in partition 0 and w0..w2 in partition 1."""
    name = topic_name()
    assert tool("topics", "create", name, "--partitions", "2").code == 0
    produce_records(broker.bootstrap, name, [(None, f"v{i}") for i in range(5)], partition=0)
    produce_records(broker.bootstrap, name, [(None, f"w{i}") for i in range(3)], partition=1)
    return name


def values(result) -> list[str]:
    assert result.code == 0, result.err
    return result.out.splitlines()


def test_partition_and_offset_forms(tool, two_partitions):
    name = two_partitions
    read = lambda *flags: values(tool("consume", name, *flags, "--timeout", "0.3"))  # noqa: E731
    assert read("--partition", "0", "--offset", "3") == ["v3", "v4"]
    assert read("--partition", "0", "--offset", "-2") == ["v3", "v4"]  # two before the end, as kcat -o -2
    assert read("--partition", "1", "--offset", "beginning") == ["w0", "w1", "w2"]
    assert read("--partition", "1", "--offset", "end") == []
    assert read("--partition", "0", "--offset", "-99") == ["v0", "v1", "v2", "v3", "v4"]  # kept within the log
    assert sorted(read("--offset", "-1")) == ["v4", "w2"]  # every partition
    assert sorted(read("-p", "0", "-p", "1", "--offset", "4")) == ["v4"]


def test_partition_and_offset_mistakes(tool, two_partitions):
    name = two_partitions
    missing = tool("consume", name, "--partition", "7")
    assert (missing.code, missing.err) == (4, f"kafkalite: topic '{name}' has no partition 7 (it has 2)\n")
    bad = tool("consume", name, "--offset", "middle")
    assert bad.code == 2 and "--offset 'middle' is not N, -N, beginning or end" in bad.err
    with_group = tool("consume", name, "--group", "g", "--offset", "0")
    assert with_group.code == 2 and "groups reset-offsets" in with_group.err
    both = tool("consume", name, "--offset", "0", "--from-beginning")
    assert both.code == 2


def test_format_string_with_kcat_letters(broker, tool, topic_name):
    name = topic_name()
    tool("topics", "create", name)
    produce_records(broker.bootstrap, name, [(b"k1", b"hello", [("h1", b"a"), ("h2", b"b")]), (None, None)])
    result = tool("consume", name, "--offset", "beginning", "--max-messages", "2",
                  "--format-string", r"%t|%p|%o|%k|%K|%s|%S|%h|100%%\n")
    assert result.code == 0, result.err
    assert result.out_bytes == (f"{name}|0|0|k1|2|hello|5|h1=a,h2=b|100%\n"
                                f"{name}|0|1||-1||-1||100%\n").encode()
    timestamps = tool("consume", name, "--offset", "beginning", "--max-messages", "1", "-f", r"%T\t%o\n")
    stamp, offset = timestamps.out.rstrip("\n").split("\t")
    assert offset == "0" and int(stamp) == json.loads(
        tool("consume", name, "--offset", "0", "--max-messages", "1", "--format", "json").out)["timestamp"]
    wrong = tool("consume", name, "-f", "%x")
    assert wrong.code == 2 and "%x is not a field" in wrong.err


def test_several_topics_and_a_pattern(broker, tool, topic_name):
    first, second, other = topic_name(), topic_name(), topic_name()
    prefix = first.rsplit("-", 1)[0]
    for name, value in ((first, "one"), (second, "two"), (other, "other")):
        tool("topics", "create", name)
        produce_records(broker.bootstrap, name, [(None, value)])
    named = tool("consume", first, second, "--offset", "beginning", "-f", r"%t %s\n", "--max-messages", "2")
    assert sorted(values(named)) == [f"{first} one", f"{second} two"]
    # The whole name must match, as Kafka's pattern subscription requires.
    pattern = f"{prefix}-({first.rsplit('-', 1)[1]}|{other.rsplit('-', 1)[1]})"
    matched = tool("consume", "--pattern", pattern, "--from-beginning", "-f", r"%t %s\n", "--max-messages", "2")
    assert sorted(values(matched)) == sorted([f"{first} one", f"{other} other"])
    grouped = tool("consume", "--pattern", pattern, "--group", f"{first}-g", "--from-beginning", "--max-messages", "2")
    assert sorted(values(grouped)) == sorted(["one", "other"])
    nothing = tool("consume", "--pattern", "no-such-topic-.*")
    assert (nothing.code, nothing.err) == (4, "kafkalite: no topic matches --pattern 'no-such-topic-.*'\n")
    bad = tool("consume", "--pattern", "(")
    assert bad.code == 2 and "is not a regular expression" in bad.err
    assert tool("consume").code == 2


def test_bytes_that_are_not_text(broker, tool, topic_name):
    name = topic_name()
    tool("topics", "create", name)
    binary = bytes(range(256))
    produce_records(broker.bootstrap, name, [(b"\xff\xfe", binary, [("h", b"\x00\x80")])])
    raw = tool("consume", name, "--offset", "0", "--max-messages", "1", "--print-key")
    assert raw.out_bytes == b"\xff\xfe\t" + binary + b"\n"  # the bytes as they are
    as_json = json.loads(tool("consume", name, "--offset", "0", "--max-messages", "1", "--format", "json").out)
    assert as_json["key"] == {"hex": "fffe"}
    assert bytes.fromhex(as_json["value"]["hex"]) == binary
    assert as_json["headers"] == [["h", {"hex": "0080"}]]


@pytest.mark.parametrize("group", [False, True], ids=["assigned", "group"])
def test_pattern_takes_on_topics_created_later(broker, tool, topic_name, monkeypatch, group):
    from kafkalite.tools import consume

    first = topic_name()
    later = f"{first}-later"
    tool("topics", "create", first)
    produce_records(broker.bootstrap, first, [(None, "early")])
    matched_once = threading.Event()
    choose = consume.chosen_topics

    async def chosen_then_signal(admin, args):
        topics = await choose(admin, args)
        matched_once.set()  # the topics matching at the start are known: now make one more
        return topics

    monkeypatch.setattr(consume, "chosen_topics", chosen_then_signal)
    monkeypatch.setattr(consume, "PATTERN_RECHECK_SECONDS", 0.1)

    def create_later() -> None:
        assert matched_once.wait(30)
        asyncio.run(create_topic(broker.bootstrap, later))
        produce_records(broker.bootstrap, later, [(None, "late")])

    maker = threading.Thread(target=create_later)
    maker.start()
    try:
        flags = ("--group", f"{first}-g") if group else ()
        result = tool("consume", "--pattern", f"{re.escape(first)}.*", "--from-beginning", *flags,
                      "-f", r"%t %s\n", "--max-messages", "2", "--timeout", "20")
    finally:
        maker.join(30)
    assert result.code == 0, result.err
    assert sorted(result.out.splitlines()) == [f"{first} early", f"{later} late"]


async def create_topic(bootstrap: str, name: str) -> None:
    from kafkalite_client import Admin

    async with Admin(bootstrap) as admin:
        await admin.create_topic(name)
