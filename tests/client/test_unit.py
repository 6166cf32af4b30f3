"""Client logic that needs no broker: murmur2, assignors, ConsumerProtocol bytes, batches, errors."""

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkalite.protocol.record_batch import RecordBatch, build_batch
from kafkalite.protocol import compression
from kafkalite_client.assignors import CooperativeStickyAssignor, RangeAssignor, RoundRobinAssignor, make_assignors
from kafkalite_client.batch import ProducerBatch, varint
from kafkalite_client.cluster import parse_bootstrap
from kafkalite_client.connection import choose_versions, describe_os_error
from kafkalite_client.consumer_protocol import (
    Assignment, Subscription, decode_assignment, decode_subscription, encode_assignment, encode_subscription,
)
from kafkalite_client.errors import (
    KafkaError, NotLeaderOrFollowerError, UnknownTopicOrPartitionError, error_class, raise_for_code,
)
from kafkalite_client.partitioner import StickyPartitioner, murmur2, partition_for_key

# Kafka's UtilsTest.testMurmur2: the Java client's own expected values.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize("key,expected", JAVA_MURMUR2.items())
def test_murmur2_matches_java_vectors(key, expected):
    assert murmur2(key) == expected


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.integers(1, 200))
def test_murmur2_and_partition_match_kafka_python(key, partitions):
    from aiokafka.partitioner import DefaultPartitioner
    from kafka.partitioner.default import murmur2 as oracle

    assert murmur2(key) & 0xFFFFFFFF == oracle(key) & 0xFFFFFFFF
    all_partitions = list(range(partitions))
    assert partition_for_key(key, partitions) == DefaultPartitioner()(key, all_partitions, all_partitions)


def test_sticky_partitioner_sticks_until_the_batch_closes():
    sp = StickyPartitioner()
    first = sp.partition("t", None, 6, list(range(6)))
    assert all(sp.partition("t", None, 6, list(range(6))) == first for _ in range(20))
    sp.next_batch("t", first)
    seen = {sp.partition("t", None, 6, list(range(6)))}
    for _ in range(50):
        sp.next_batch("t", sp.partition("t", None, 6, list(range(6))))
        seen.add(sp.partition("t", None, 6, list(range(6))))
    assert len(seen) > 1
    assert sp.partition("t", b"21", 6, [0]) == partition_for_key(b"21", 6)  # keys ignore availability
    assert sp.partition("u", None, 6, [4]) == 4  # keyless records avoid partitions without a leader


# ConsumerProtocol ----------------------------------------------------------------------------------

def test_subscription_round_trips_and_matches_aiokafka_v0():
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata

    v0 = Subscription(["b", "a"], b"ud", version=0)
    ours = encode_subscription(v0)
    assert ours == ConsumerProtocolMemberMetadata(0, ["a", "b"], b"ud").encode()
    theirs = ConsumerProtocolMemberMetadata.decode(ConsumerProtocolMemberMetadata(0, ["x"], b"").encode())
    assert decode_subscription(ConsumerProtocolMemberMetadata(0, ["x"], b"").encode()).topics == theirs.subscription

    v1 = Subscription(["a"], None, {"a": [2, 0]}, version=1)
    back = decode_subscription(encode_subscription(v1))
    assert back.topics == ["a"] and back.user_data is None and back.owned_partitions == {"a": [0, 2]}
    # aiokafka reads the v0 prefix of our v1 bytes
    assert ConsumerProtocolMemberMetadata.decode(encode_subscription(v1)).subscription == ["a"]

    assignment = Assignment({"t": [3, 1], "u": [0]}, b"x", version=0)
    encoded = encode_assignment(assignment)
    assert encoded == ConsumerProtocolMemberAssignment(0, [("t", [1, 3]), ("u", [0])], b"x").encode()
    assert decode_assignment(encoded).partitions == {"t": [1, 3], "u": [0]}
    assert decode_assignment(b"").partitions == {}


def test_subscription_v3_fields_round_trip():
    sub = Subscription(["t"], b"", {"t": [1]}, generation_id=7, rack_id="r1", version=3)
    back = decode_subscription(encode_subscription(sub))
    assert (back.generation_id, back.rack_id, back.owned_partitions) == (7, "r1", {"t": [1]})


# Assignors -------------------------------------------------------------------------------------------

def subs(**members):
    return {m: Subscription(list(topics)) for m, topics in members.items()}


def test_range_assignor_matches_kafka():
    result = RangeAssignor().assign(subs(c0=["t0", "t1"], c1=["t0", "t1"]), {"t0": 3, "t1": 3})
    assert result == {"c0": {"t0": [0, 1], "t1": [0, 1]}, "c1": {"t0": [2], "t1": [2]}}


def test_roundrobin_assignor_matches_kafka():
    result = RoundRobinAssignor().assign(subs(c0=["t0", "t1"], c1=["t0", "t1"]), {"t0": 3, "t1": 3})
    assert result == {"c0": {"t0": [0, 2], "t1": [1]}, "c1": {"t0": [1], "t1": [0, 2]}}
    uneven = RoundRobinAssignor().assign(subs(c0=["t0"], c1=["t0", "t1"]), {"t0": 1, "t1": 2})
    assert uneven == {"c0": {"t0": [0]}, "c1": {"t1": [0, 1]}}


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 6), st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 9), min_size=1),
       st.sampled_from([RangeAssignor, RoundRobinAssignor, CooperativeStickyAssignor]))
def test_assignors_give_every_partition_to_exactly_one_member(n_members, counts, cls):
    members = subs(**{f"m{i}": list(counts) for i in range(n_members)})
    result = cls().assign(members, counts)
    given_out = sorted((t, p) for parts in result.values() for t, ps in parts.items() for p in ps)
    assert given_out == sorted((t, p) for t, n in counts.items() for p in range(n))
    if cls is not RangeAssignor:  # range balances per topic, not overall
        sizes = [sum(len(ps) for ps in parts.values()) for parts in result.values()]
        assert max(sizes) - min(sizes) <= 1


def test_cooperative_sticky_keeps_owned_and_holds_back_moves():
    a = CooperativeStickyAssignor()
    first = a.assign({"m1": Subscription(["t"])}, {"t": 4})
    assert first == {"m1": {"t": [0, 1, 2, 3]}}
    # m2 joins: m1 keeps two partitions, the two that move are left out this round ...
    second = a.assign({"m1": Subscription(["t"], owned_partitions={"t": [0, 1, 2, 3]}),
                       "m2": Subscription(["t"])}, {"t": 4})
    kept = second["m1"]["t"]
    assert len(kept) == 2 and second["m2"] == {}
    # ... and go to m2 once m1 no longer owns them.
    third = a.assign({"m1": Subscription(["t"], owned_partitions={"t": kept}), "m2": Subscription(["t"])}, {"t": 4})
    assert third["m1"]["t"] == kept and sorted(third["m2"]["t"]) == sorted({0, 1, 2, 3} - set(kept))


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown partition assignment strategy"):
        make_assignors(["sticky-ish"])


# Batches ------------------------------------------------------------------------------------------------

def test_varint_matches_zigzag():
    assert varint(0) == b"\x00" and varint(-1) == b"\x01" and varint(1) == b"\x02" and varint(64) == b"\x80\x01"
    assert varint(20000) == bytes([0xC0, 0xB8, 0x02])


@pytest.mark.parametrize("codec", sorted(compression.NAMES))
async def test_producer_batch_decodes_like_build_batch(codec):
    records = [(b"k1", b"v1", [("h", b"x")]), (None, b"v2" * 100, []), (b"k3", None, [("a", None), ("b", b"")])]
    timestamps = [1000, 999, 1500]
    batch = ProducerBatch("t", 0, 0.0)
    for (k, v, h), ts in zip(records, timestamps):
        batch.append(k, v, h, ts)
    ours = RecordBatch(memoryview(batch.encode(codec, 7, 1, 42)))
    reference = RecordBatch(memoryview(build_batch(records, timestamps=timestamps, codec=codec)))
    assert ours.crc_ok()
    assert (ours.producer_id, ours.producer_epoch, ours.base_sequence, ours.records_count) == (7, 1, 42, 3)
    assert ours.max_timestamp == 1500 and ours.codec == codec
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in ours.records()] == \
        [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in reference.records()]
    assert batch.encode(codec) is batch.encoded  # a retry resends the same bytes


# Errors, config parsing, version choice -----------------------------------------------------------------

def test_errors_are_named_after_kafka_codes():
    assert error_class(3) is UnknownTopicOrPartitionError
    e = NotLeaderOrFollowerError("producing to t-0")
    assert isinstance(e, KafkaError) and e.code == 6 and e.retriable and e.name == "NOT_LEADER_OR_FOLLOWER"
    assert str(e) == "NOT_LEADER_OR_FOLLOWER (6): producing to t-0"
    with pytest.raises(UnknownTopicOrPartitionError):
        raise_for_code(3, "x")
    raise_for_code(0)
    assert error_class(9999).code == -1


def test_connection_error_sentences():
    assert describe_os_error(ConnectionRefusedError(111, "Connection refused")) == "connection refused"
    assert describe_os_error(asyncio.TimeoutError()) == "timed out"


async def test_connect_refused_reads_as_a_sentence():
    import socket

    from kafkalite_client.connection import Connection
    from kafkalite_client.errors import KafkaConnectionError

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(KafkaConnectionError) as info:
        await Connection("127.0.0.1", port).connect()
    assert str(info.value) == f"cannot connect to 127.0.0.1:{port}: connection refused"
    assert isinstance(info.value, ConnectionError)


def test_parse_bootstrap():
    assert parse_bootstrap("a:1, b:2") == [("a", 1), ("b", 2)]
    assert parse_bootstrap(["h"]) == [("h", 9092)]
    with pytest.raises(ValueError):
        parse_bootstrap("")


def test_choose_versions_picks_highest_common():
    chosen = choose_versions({0: (0, 11), 1: (0, 3), 3: (1, 100), 9999: (0, 1), 47: (1, 1)})
    assert chosen[0] == 10  # Produce: ours stop at 10
    assert 1 not in chosen  # Fetch: ours are 4-12, the broker's 0-3: nothing in common
    assert chosen[3] == 12 and 9999 not in chosen and 47 not in chosen
    assert choose_versions({24: (0, 5)})[24] == 3  # AddPartitionsToTxn v4+ is the brokers' form


_record = st.tuples(
    st.one_of(st.none(), st.binary(max_size=300)),
    st.one_of(st.none(), st.binary(max_size=300)),
    st.lists(st.tuples(st.text(max_size=5), st.one_of(st.none(), st.binary(max_size=10))), max_size=3),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_record, min_size=1, max_size=80), st.sampled_from(sorted(compression.NAMES)),
       st.integers(0, 2**40), st.integers(0, 90), st.booleans())
def test_fast_fetch_decoder_matches_the_reference(records, codec, base_ts, min_index, log_append):
    from kafkalite.protocol.record_batch import TIMESTAMP_TYPE_BIT, set_base_offset

    from kafkalite_client.fetched import decode_batch

    timestamps = [base_ts + (i * 7919) % 100_000 - 50_000 for i in range(len(records))]
    raw = bytearray(build_batch(records, timestamps=timestamps, codec=codec,
                                attributes=TIMESTAMP_TYPE_BIT if log_append else 0))
    set_base_offset(raw, 1000)
    batch = RecordBatch(memoryview(raw))
    out = []
    decode_batch(batch, "t", 3, 1000 + min_index, out)
    expected = [r for r in batch.records() if r.offset >= 1000 + min_index]
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in out] == \
        [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in expected]
    assert all(r.topic == "t" and r.partition == 3 and r.timestamp_type == int(log_append) for r in out)


# OffsetAndMetadata ---------------------------------------------------------------------------------

def test_offset_and_metadata_is_an_int_with_metadata():
    import json
    import pickle

    from kafkalite_client.records import OffsetAndMetadata, to_offset_and_metadata

    committed = OffsetAndMetadata(5, "run 17")
    assert committed == 5 and committed + 1 == 6 and committed.offset == 5 and committed.metadata == "run 17"
    assert (str(committed), f"{committed:>3}", json.dumps(committed)) == ("5", "  5", "5")  # prints as the offset
    assert repr(committed) == "OffsetAndMetadata(offset=5, metadata='run 17')"
    assert pickle.loads(pickle.dumps(committed)).metadata == "run 17"
    assert OffsetAndMetadata(1, None).metadata == ""
    for offset in (7, (7, "m"), OffsetAndMetadata(7, "m")):
        normal = to_offset_and_metadata(offset)
        assert type(normal) is OffsetAndMetadata and normal == 7
    assert to_offset_and_metadata((7, "m")).metadata == "m" and to_offset_and_metadata(7).metadata == ""
