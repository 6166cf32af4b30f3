"""The client's transactions against a live broker: a transactional producer (begin, send, send offsets, commit,
abort, fencing) and read_committed consumers, ours and confluent-kafka's, each reading what the other wrote."""

import asyncio
import time

import confluent_kafka
import pytest

from kafkalite_client import (
    Admin, Consumer, Producer, ProducerFencedError, TopicPartition, TransactionAbortableError,
    TransactionAbortedError, TransactionStateError,
)

DEADLINE = 30  # seconds: the machine is shared and slow; every wait polls a condition up to this


async def read_committed_to_end(bootstrap, topic, partitions=1, isolation_level="read_committed",
                                expect=None) -> list[bytes]:
    """Every value a fresh consumer with this isolation level reads from the beginning up to the partitions'
    ends (the last stable offset for read_committed), once at least `expect` values are there."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    values: list[bytes] = []
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                        isolation_level=isolation_level) as c:
        c.assign(tps)
        deadline = time.monotonic() + DEADLINE
        while True:
            for records in (await c.getmany(timeout_ms=200)).values():
                values += [r.value for r in records]
            ends = await c.end_offsets(tps)
            at_end = all([await c.position(tp) >= ends[tp] for tp in tps])
            if at_end and (expect is None or len(values) >= expect):
                return values
            assert time.monotonic() < deadline, f"read only {values} (ends {ends})"


def transactional(bootstrap, tid, **kwargs) -> Producer:
    return Producer(bootstrap, transactional_id=tid, linger_ms=1, **kwargs)


async def test_committed_records_are_read_by_read_committed(bootstrap, new_topic):
    topic = await new_topic(2)
    async with transactional(bootstrap, f"tid-{topic}") as p:
        assert p.producer_id >= 0 and p.producer_epoch >= 0
        p.begin_transaction()
        for i in range(6):
            await p.enqueue(topic, f"c{i}", partition=i % 2)
        await p.commit_transaction()
    committed = await read_committed_to_end(bootstrap, topic, 2, expect=6)
    assert sorted(committed) == [f"c{i}".encode() for i in range(6)]
    assert sorted(await read_committed_to_end(bootstrap, topic, 2, "read_uncommitted", expect=6)) == sorted(committed)


async def test_aborted_records_only_read_uncommitted(bootstrap, new_topic):
    topic = await new_topic(1)
    async with transactional(bootstrap, f"tid-{topic}") as p, Producer(bootstrap) as plain:
        p.begin_transaction()
        for i in range(3):
            await p.send(topic, f"aborted{i}")
        await plain.send(topic, "plain0")  # between the aborted records: read by both levels
        await p.abort_transaction()
        p.begin_transaction()
        await p.send(topic, "committed0")
        await p.commit_transaction()
        p.begin_transaction()
        await p.send(topic, "aborted3")
        await p.abort_transaction()
        await plain.send(topic, "plain1")
    assert await read_committed_to_end(bootstrap, topic, expect=3) == [b"plain0", b"committed0", b"plain1"]
    assert await read_committed_to_end(bootstrap, topic, isolation_level="read_uncommitted", expect=6) == [
        b"aborted0", b"aborted1", b"aborted2", b"plain0", b"committed0", b"aborted3", b"plain1"]


async def test_interleaved_transactions_of_two_producers(bootstrap, new_topic):
    """Batches of an aborted and a committed transaction alternate in one partition: only the aborted producer's
    are dropped, and only up to its ABORT marker (its next transaction commits)."""
    topic = await new_topic(1)
    async with transactional(bootstrap, f"tid-a-{topic}") as a, transactional(bootstrap, f"tid-b-{topic}") as b:
        a.begin_transaction()
        b.begin_transaction()
        for i in range(3):
            await a.send(topic, f"a{i}")
            await b.send(topic, f"b{i}")
        await a.abort_transaction()
        a.begin_transaction()
        await a.send(topic, "a-after")
        await b.send(topic, "b3")
        await b.commit_transaction()
        await a.commit_transaction()
    # each send is acknowledged before the next: the log holds them in this order
    assert await read_committed_to_end(bootstrap, topic, expect=5) == [b"b0", b"b1", b"b2", b"a-after", b"b3"]


async def test_an_open_transaction_is_invisible_until_it_commits(bootstrap, new_topic):
    topic = await new_topic(1)
    tp = TopicPartition(topic, 0)
    async with transactional(bootstrap, f"tid-{topic}") as p, Producer(bootstrap) as plain:
        await plain.send(topic, "before")
        p.begin_transaction()
        first = await p.send(topic, "open0")
        await p.send(topic, "open1")
        await plain.send(topic, "after")  # after the open transaction's first record: held back with it
        assert await read_committed_to_end(bootstrap, topic, isolation_level="read_uncommitted", expect=4) == [
            b"before", b"open0", b"open1", b"after"]
        async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                            isolation_level="read_committed") as c:
            c.assign([tp])
            assert (await c.end_offsets([tp]))[tp] == first.offset  # ListOffsets latest is the LSO
            got = []
            deadline = time.monotonic() + DEADLINE
            while not got:
                assert time.monotonic() < deadline
                for records in (await c.getmany(timeout_ms=500)).values():
                    got += [r.value for r in records]
            assert got == [b"before"]
            assert c.last_stable_offset(tp) == first.offset
            assert await c.getmany(timeout_ms=1000) == {}  # nothing past the LSO while it is open
            await p.commit_transaction()
            deadline = time.monotonic() + DEADLINE
            while len(got) < 4:
                assert time.monotonic() < deadline, got
                for records in (await c.getmany(timeout_ms=500)).values():
                    got += [r.value for r in records]
            assert got == [b"before", b"open0", b"open1", b"after"]


async def committed_offset(bootstrap, group, tp):
    async with Consumer(bootstrap_servers=bootstrap, group_id=group) as c:
        return await c.committed(tp)


async def test_offsets_sent_to_a_transaction_count_only_if_it_commits(bootstrap, new_topic):
    topic = await new_topic(1)
    tp = TopicPartition(topic, 0)
    group = f"group-{topic}"
    async with transactional(bootstrap, f"tid-{topic}") as p:
        p.begin_transaction()
        await p.send(topic, "x")
        await p.send_offsets_to_transaction({tp: 5}, group)
        await p.abort_transaction()
        assert await committed_offset(bootstrap, group, tp) is None
        p.begin_transaction()  # offsets only, no records
        await p.send_offsets_to_transaction({tp: (7, "meta")}, group)
        await p.commit_transaction()
    deadline = time.monotonic() + DEADLINE
    while (found := await committed_offset(bootstrap, group, tp)) is None:
        assert time.monotonic() < deadline
    assert (int(found), found.metadata) == (7, "meta")


async def test_consume_transform_produce_with_the_group_metadata(bootstrap, new_topic):
    source, sink = await new_topic(1), await new_topic(1)
    group = f"group-{source}"
    async with Producer(bootstrap) as plain:
        for i in range(4):
            await plain.send(source, f"in{i}")
    async with Consumer(source, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                        enable_auto_commit=False, isolation_level="read_committed",
                        heartbeat_interval_ms=200) as c, transactional(bootstrap, f"tid-{source}") as p:
        seen = []
        deadline = time.monotonic() + DEADLINE
        while len(seen) < 4:
            assert time.monotonic() < deadline
            for records in (await c.getmany(timeout_ms=500)).values():
                seen += records
        metadata = c.group_metadata()
        assert metadata.group_id == group and metadata.generation_id >= 1 and metadata.member_id
        async with p.transaction():
            for record in seen:
                await p.enqueue(sink, record.value.replace(b"in", b"out"))
            await p.send_offsets_to_transaction({TopicPartition(source, 0): seen[-1].offset + 1}, metadata)
    assert await read_committed_to_end(bootstrap, sink, expect=4) == [f"out{i}".encode() for i in range(4)]
    deadline = time.monotonic() + DEADLINE
    while await committed_offset(bootstrap, group, TopicPartition(source, 0)) != 4:
        assert time.monotonic() < deadline


async def test_a_second_producer_with_the_same_id_fences_the_first(bootstrap, new_topic):
    topic = await new_topic(2)
    tid = f"tid-{topic}"
    async with transactional(bootstrap, tid) as zombie:
        zombie.begin_transaction()
        await zombie.send(topic, "zombie")
        async with transactional(bootstrap, tid) as successor:
            assert successor.producer_id == zombie.producer_id
            assert successor.producer_epoch > zombie.producer_epoch
            with pytest.raises(ProducerFencedError):
                await zombie.commit_transaction()
            # fatal: every transactional call raises it again
            with pytest.raises(ProducerFencedError):
                zombie.begin_transaction()
            with pytest.raises(ProducerFencedError):
                await zombie.abort_transaction()
            with pytest.raises(ProducerFencedError):
                await zombie.send(topic, "more")
            async with successor.transaction():
                await successor.send(topic, "successor")
    assert await read_committed_to_end(bootstrap, topic, 2, expect=1) == [b"successor"]


async def test_records_waiting_for_a_fenced_transaction_fail_and_close_returns(bootstrap, new_topic):
    topic = await new_topic(2)
    tid = f"tid-{topic}"
    async with transactional(bootstrap, tid) as zombie, transactional(bootstrap, tid):
        zombie.begin_transaction()
        first = await zombie.enqueue(topic, "zombie0", partition=0)
        await asyncio.sleep(0)  # the sender starts adding partition 0 ...
        second = await zombie.enqueue(topic, "zombie1", partition=1)  # ... while this one waits its turn
        for future in (first, second):
            with pytest.raises(ProducerFencedError):
                await asyncio.wait_for(future, DEADLINE)
        await asyncio.wait_for(zombie.close(), DEADLINE)


async def test_the_context_manager_commits_or_aborts(bootstrap, new_topic):
    topic = await new_topic(1)
    async with transactional(bootstrap, f"tid-{topic}") as p:
        async with p.transaction():
            await p.send(topic, "kept")
        with pytest.raises(RuntimeError, match="handler failed"):
            async with p.transaction():
                await p.send(topic, "dropped")
                raise RuntimeError("handler failed")
        async with p.transaction():
            await p.send(topic, "kept too")
    assert await read_committed_to_end(bootstrap, topic, expect=2) == [b"kept", b"kept too"]


async def test_a_failed_record_makes_the_transaction_abortable(bootstrap, new_topic):
    small = await new_topic(1, **{"max.message.bytes": "1000"})
    async with transactional(bootstrap, f"tid-{small}") as p:
        p.begin_transaction()
        await p.send(small, "fits")
        with pytest.raises(Exception) as refused:
            await p.send(small, b"x" * 5000)  # the broker refuses it: larger than the topic allows
        assert refused.value.code.name in ("MESSAGE_TOO_LARGE", "RECORD_LIST_TOO_LARGE")
        with pytest.raises(TransactionAbortableError) as abortable:
            await p.send(small, "more")
        assert abortable.value.cause is refused.value
        with pytest.raises(TransactionAbortableError):
            await p.commit_transaction()
        with pytest.raises(TransactionAbortableError):
            p.begin_transaction()
        epoch = p.producer_epoch
        await p.abort_transaction()
        # The refused batch used sequence numbers the broker never wrote: a new epoch starts them again (KIP-360).
        assert (p.producer_epoch, p._next_sequence) == (epoch + 1, {})
        async with p.transaction():  # the producer goes on, with the same id
            await p.send(small, "after the abort")
    assert await read_committed_to_end(bootstrap, small, expect=1) == [b"after the abort"]


async def test_abort_drops_records_not_sent_yet(bootstrap, new_topic):
    topic = await new_topic(1)
    async with Producer(bootstrap, transactional_id=f"tid-{topic}", linger_ms=60000, batch_size=1 << 20) as p:
        p.begin_transaction()
        future = await p.enqueue(topic, "lingering")  # waits for linger_ms: not sent when the abort comes
        await p.abort_transaction()
        with pytest.raises(TransactionAbortedError):
            await future
        p.begin_transaction()
        await p.enqueue(topic, "flushed by the commit")
        await p.commit_transaction()
    assert await read_committed_to_end(bootstrap, topic, isolation_level="read_uncommitted", expect=1) == [
        b"flushed by the commit"]


async def test_calls_out_of_order_raise_transaction_state_errors(bootstrap, new_topic):
    topic = await new_topic(1)
    with pytest.raises(ValueError, match="acks='all'"):
        Producer(bootstrap, transactional_id="x", acks=1)
    with pytest.raises(ValueError):
        Producer(bootstrap, transactional_id="x", enable_idempotence=False)
    async with Producer(bootstrap) as plain:
        with pytest.raises(TransactionStateError, match="no transactional_id"):
            plain.begin_transaction()
    p = transactional(bootstrap, f"tid-{topic}")
    with pytest.raises(TransactionStateError, match="start the producer"):
        p.begin_transaction()
    async with p:
        with pytest.raises(TransactionStateError, match="send"):
            await p.send(topic, "outside")
        with pytest.raises(TransactionStateError, match="commit"):
            await p.commit_transaction()
        with pytest.raises(TransactionStateError, match="abort"):
            await p.abort_transaction()
        p.begin_transaction()
        with pytest.raises(TransactionStateError, match="begin"):
            p.begin_transaction()
        await p.commit_transaction()  # nothing sent: nothing to tell the coordinator
        p.begin_transaction()
        await p.send(topic, "inside")
        await p.commit_transaction()
    assert await read_committed_to_end(bootstrap, topic, expect=1) == [b"inside"]


def confluent_read_committed(bootstrap, topic, expect: int) -> list[bytes]:
    c = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": f"rdkafka-{topic}",
                                  "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                                  "enable.partition.eof": True})
    c.subscribe([topic])
    values, at_eof = [], False
    deadline = time.monotonic() + DEADLINE
    try:
        while not (at_eof and len(values) >= expect):
            assert time.monotonic() < deadline, f"confluent read only {values}"
            msg = c.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                at_eof = msg.error().code() == confluent_kafka.KafkaError._PARTITION_EOF
                continue
            at_eof = False
            values.append(msg.value())
    finally:
        c.close()
    return values


@pytest.mark.interop
async def test_confluent_read_committed_reads_exactly_what_we_committed(bootstrap, new_topic):
    topic = await new_topic(1)
    async with transactional(bootstrap, f"tid-{topic}") as p:
        for n in range(4):
            p.begin_transaction()
            for i in range(3):
                await p.enqueue(topic, f"t{n}-{i}")
            await (p.commit_transaction() if n % 2 == 0 else p.abort_transaction())
    expected = [f"t{n}-{i}".encode() for n in (0, 2) for i in range(3)]
    assert await asyncio.to_thread(confluent_read_committed, bootstrap, topic, len(expected)) == expected


def confluent_transactions(bootstrap, topic, tid) -> None:
    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 1})
    p.init_transactions(DEADLINE)
    for n in range(4):
        p.begin_transaction()
        for i in range(3):
            p.produce(topic, f"r{n}-{i}".encode())
        if n % 2 == 0:
            p.commit_transaction(DEADLINE)
        else:
            assert p.flush(DEADLINE) == 0  # librdkafka's abort drops unsent records: these are in the log
            p.abort_transaction(DEADLINE)
    p.flush(DEADLINE)


@pytest.mark.interop
async def test_we_read_confluent_transactions_with_their_aborts(bootstrap, new_topic):
    topic = await new_topic(1)
    await asyncio.to_thread(confluent_transactions, bootstrap, topic, f"rdkafka-tid-{topic}")
    committed = [f"r{n}-{i}".encode() for n in (0, 2) for i in range(3)]
    assert await read_committed_to_end(bootstrap, topic, expect=len(committed)) == committed
    everything = await read_committed_to_end(bootstrap, topic, isolation_level="read_uncommitted")
    assert everything == [f"r{n}-{i}".encode() for n in range(4) for i in range(3)]


async def test_admin_sees_the_committed_offsets_of_a_transaction(bootstrap, new_topic):
    """send_offsets_to_transaction's offsets reach the group as any commit does: the admin client reads them."""
    topic = await new_topic(1)
    group = f"group-{topic}"
    async with transactional(bootstrap, f"tid-{topic}") as p, p.transaction():
        await p.send_offsets_to_transaction({(topic, 0): 3}, group)
    async with Admin(bootstrap) as admin:
        deadline = time.monotonic() + DEADLINE
        while int((await admin.list_group_offsets(group)).get(TopicPartition(topic, 0), -1)) != 3:
            assert time.monotonic() < deadline
