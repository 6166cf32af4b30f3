"""`kafkalite consume --isolation-level`: read_committed prints committed transactions' records only, and stops at
an open transaction; read_uncommitted (the default, as kafka-console-consumer's) prints every record."""

import asyncio

import pytest

from kafkalite_client import Producer


def write_transactions(bootstrap: str, topic: str) -> None:
    """c0 c1 committed, a0 aborted, o0 in a transaction left open, then p0 outside any transaction."""
    async def write():
        async with Producer(bootstrap, transactional_id=f"tid-{topic}", linger_ms=1) as p, \
                Producer(bootstrap) as plain:
            async with p.transaction():
                await p.send(topic, "c0")
                await p.send(topic, "c1")
            p.begin_transaction()
            await p.send(topic, "a0")
            await p.abort_transaction()
            p.begin_transaction()
            await p.send(topic, "o0")  # closing the producer leaves this transaction open at the coordinator
            await plain.send(topic, "p0")

    asyncio.run(write())


@pytest.fixture
def transactional_topic(broker, tool, topic_name):
    name = topic_name()
    assert tool("topics", "create", name).code == 0
    write_transactions(broker.bootstrap, name)
    return name


def test_read_committed_skips_aborted_and_open_transactions(tool, transactional_topic):
    read = lambda *flags: tool("consume", transactional_topic, "--offset", "beginning", "--timeout", "1", *flags)  # noqa: E731
    committed = read("--isolation-level", "read_committed")
    assert committed.code == 0, committed.err
    assert committed.out.splitlines() == ["c0", "c1"]  # p0 comes after the open transaction's first record
    everything = read()
    assert everything.code == 0, everything.err
    assert everything.out.splitlines() == ["c0", "c1", "a0", "o0", "p0"]
    assert read("--isolation-level", "read_uncommitted").out == everything.out


def test_an_unknown_isolation_level_is_a_usage_error(tool, transactional_topic):
    result = tool("consume", transactional_topic, "--isolation-level", "serializable")
    assert result.code == 2 and "--isolation-level" in result.err
