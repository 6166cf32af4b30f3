"""__consumer_offsets records: layouts, partitioning, load after restart, and offset expiry."""

from group_harness import SESSION, Harness
from hypothesis import given
from hypothesis import strategies as st

from kafkalite.group import GroupConfig, GroupCoordinator
from kafkalite.group import records as rec
from kafkalite.protocol.errors import ErrorCode as E

DAY = 24 * 3_600_000


def test_java_hash_and_partition():
    assert rec.java_string_hash("") == 0
    assert rec.java_string_hash("hello") == 99162322
    assert rec.java_string_hash("Aa") == rec.java_string_hash("BB") == 2112
    assert rec.java_string_hash("polygenelubricants") == -(2**31)
    assert rec.partition_for("polygenelubricants", 50) == 0  # Kafka's abs(MIN_VALUE) is 0
    assert rec.partition_for("hello", 50) == 99162322 % 50
    assert rec.java_string_hash("😀") == (0xD83D * 31 + 0xDE00)  # UTF-16 code units


def test_key_layouts_match_kafka():
    assert rec.offset_key("g", "t", 3) == b"\x00\x01\x00\x01g\x00\x01t\x00\x00\x00\x03"
    assert rec.group_key("g") == b"\x00\x02\x00\x01g"
    value = rec.offset_value(rec.OffsetValue(7, 2, "m", 1000))
    assert value == (b"\x00\x03" + (7).to_bytes(8, "big") + (2).to_bytes(4, "big") + b"\x00\x01m"
                     + (1000).to_bytes(8, "big"))


def test_older_offset_value_versions_decode():
    v1 = b"\x00\x01" + (7).to_bytes(8, "big") + b"\x00\x00" + (5).to_bytes(8, "big") + (9).to_bytes(8, "big")
    assert rec.decode_offset_value(v1) == rec.OffsetValue(7, -1, "", 5, 9)
    assert rec.decode_key(b"\x00\x05\x00\x01g") is None  # newer record types are skipped


texts = st.text(max_size=20)
members = st.builds(rec.MemberValue, texts, st.none() | texts, texts, texts, st.integers(0, 2**31 - 1),
                    st.integers(0, 2**31 - 1), st.binary(max_size=30), st.binary(max_size=30))


@given(st.builds(rec.GroupValue, texts, st.integers(0, 2**31 - 1), st.none() | texts, st.none() | texts,
                 st.integers(0, 2**62), st.lists(members, max_size=4)))
def test_group_value_round_trip(value):
    assert rec.decode_group_value(rec.group_value(value)) == value


@given(st.builds(rec.OffsetValue, st.integers(-1, 2**62), st.integers(-1, 2**31 - 1), texts, st.integers(0, 2**62)))
def test_offset_value_round_trip(value):
    assert rec.decode_offset_value(rec.offset_value(value)) == value


@given(texts, texts, st.integers(0, 2**31 - 1))
def test_key_round_trip(group, topic, partition):
    assert rec.decode_key(rec.offset_key(group, topic, partition)) == rec.OffsetKey(group, topic, partition)
    assert rec.decode_key(rec.group_key(group)) == rec.GroupKey(group)


def load_all(c: GroupCoordinator, records: list[tuple[int, bytes, bytes | None]], now: int) -> None:
    """Load every partition from (partition, key, value) records, as a standalone broker does at start."""
    for partition in range(c.config.offsets_topic_num_partitions):
        c.load_partition(partition, [(k, v) for p, k, v in records if p == partition], now)


def reload(h: Harness, now: int) -> GroupCoordinator:
    fresh = GroupCoordinator(h.config)
    load_all(fresh, h.records, now)
    return fresh


def test_records_go_to_the_groups_partition():
    h = Harness(offsets_topic_num_partitions=7)
    h.stable_group("some-group")
    h.commit("some-group", "", -1, {})
    assert {p for p, _, _ in h.records} == {rec.partition_for("some-group", 7)}


def test_load_rebuilds_groups_and_offsets():
    h = Harness()
    (a, b), gen = h.stable_group("g", n=2)
    h.commit("g", a, gen, {("t", 0): 10, ("t", 1): 11})
    h.commit("g", a, gen, {("t", 0): 12})  # the later commit wins
    h.commit("solo", "", -1, {("u", 0): 3})
    h.apply(h.c.offset_delete(h.now, "solo", [("u", 0)])[2])
    h.commit("gone", "", -1, {("v", 0): 1})
    h.apply(h.c.delete_groups(h.now, ["gone"])[1])
    (s,), _ = h.stable_group("emptied")
    h.leave("emptied", s)
    h.commit("emptied", "", -1, {("w", 0): 4})

    fresh = reload(h, h.now + 5)
    assert set(fresh.groups) == {"g", "emptied"}
    g, old = fresh.groups["g"], h.c.groups["g"]
    assert (g.state.value, g.generation_id, g.protocol_type, g.protocol_name, g.leader_id) == (
        "Stable", old.generation_id, "consumer", "range", old.leader_id)
    assert list(g.members) == list(old.members)
    assert [m.assignment for m in g.members.values()] == [m.assignment for m in old.members.values()]
    assert {k: o.offset for k, o in g.offsets.items()} == {("t", 0): 12, ("t", 1): 11}
    emptied = fresh.groups["emptied"]
    assert emptied.state.value == "Empty" and emptied.generation_id == 2 and emptied.protocol_type == "consumer"
    assert fresh.offset_fetch("emptied")[0][2].offset == 4


def test_loaded_members_heartbeat_on_or_time_out():
    h = Harness()
    (a, b), gen = h.stable_group("g", n=2)
    fresh = Harness()
    fresh.c = reload(h, 0)
    for partition in range(h.config.offsets_topic_num_partitions):  # the members' session timers, armed
        fresh.apply(fresh.c.load_partition(partition, [(k, v) for p, k, v in h.records if p == partition], 0))
    assert fresh.heartbeat("g", a, gen) == E.NONE
    sync = fresh.sync("g", b, gen)
    assert fresh.replies[sync].assignment == b.encode()
    for _ in range(3):
        fresh.advance(SESSION // 2)
        fresh.heartbeat("g", a, gen)
    assert list(fresh.c.groups["g"].members) == [a]  # b never came back after the restart
    token = fresh.join("g", a)
    assert fresh.replies[token].generation_id == gen + 1


def test_load_skips_undecodable_records():
    h = Harness()
    h.commit("solo", "", -1, {("t", 0): 1})
    records = [(b"\x00", b"junk"), (None, b"x"), (rec.group_key("x"), b"\x00\x09")] + [(k, v) for _, k, v in h.records]
    fresh = GroupCoordinator(GroupConfig())
    fresh.load_partition(rec.partition_for("solo", 50), records, 0)
    assert list(fresh.groups) == ["solo"]


# ------------------------------------------------------------ expiry by offsets.retention.minutes


def test_offsets_of_an_empty_group_expire_after_the_retention_from_becoming_empty():
    h = Harness(offsets_retention_minutes=24 * 60, offsets_retention_check_interval_ms=60_000)
    h.apply(h.c.start(h.now))
    (a,), gen = h.stable_group("g")
    h.commit("g", a, gen, {("t", 0): 1})
    for _ in range(2 * DAY // 5000):  # in use: kept however old
        h.advance(5000)
        h.heartbeat("g", a, gen)
    assert h.c.offset_fetch("g")
    h.leave("g", a)
    emptied_at = h.now
    h.records.clear()
    h.advance(DAY - 60_000)
    assert h.c.offset_fetch("g")
    h.advance(60_000 + 60_000)
    assert "g" not in h.c.groups and h.now - emptied_at <= DAY + 120_000
    assert sorted(v is None for _, _, v in h.records) == [True, True]  # offset and group tombstones
    assert reload(h, h.now).groups == {}


def test_standalone_offsets_expire_one_by_one():
    h = Harness(offsets_retention_minutes=24 * 60, offsets_retention_check_interval_ms=60_000)
    h.apply(h.c.start(h.now))
    h.commit("solo", "", -1, {("t", 0): 1})
    h.advance(DAY // 2)
    h.commit("solo", "", -1, {("t", 1): 1})
    h.advance(DAY // 2 + 60_000)
    assert [p for _, p, _ in h.c.offset_fetch("solo")] == [1]
    h.advance(DAY // 2)
    assert "solo" not in h.c.groups


def test_unsubscribed_offsets_of_a_stable_group_expire():
    h = Harness(offsets_retention_minutes=1, offsets_retention_check_interval_ms=60_000)
    h.apply(h.c.start(h.now))
    (a,), gen = h.stable_group("g")  # subscribed to t only
    h.commit("g", a, gen, {("t", 0): 1, ("old", 0): 1})
    for _ in range(30):
        h.advance(SESSION // 2)
        h.heartbeat("g", a, gen)
    assert [t for t, _, _ in h.c.offset_fetch("g")] == ["t"]
