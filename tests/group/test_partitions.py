"""Per-partition coordination: the coordinator serves only the __consumer_offsets partitions it has loaded,
as groups move with the partitions' leadership in a cluster; and it logs every group state change."""

from group_harness import Harness

from kafkalite.group import GroupCoordinator, OffsetCommitRequest, TimerKey, TimerKind, partition_for
from kafkalite.protocol.errors import ErrorCode as E

PARTITIONS = 3


def group_in(partition: int, prefix: str = "g") -> str:
    return next(f"{prefix}{i}" for i in range(1000) if partition_for(f"{prefix}{i}", PARTITIONS) == partition)


A, B = group_in(0), group_in(1)  # two groups in different partitions


def test_partition_for_is_kafkas():
    assert partition_for("hello", 50) == 99162322 % 50
    assert partition_for("polygenelubricants", 50) == 0  # hashCode is MIN_VALUE, Kafka's Utils.abs gives 0
    assert partition_for("Aa", 7) == partition_for("BB", 7) == 2112 % 7


def every_request_error(h: Harness, group: str) -> dict[str, int]:
    """The error each group request gets for `group`."""
    c = h.c
    out = {"join": h.replies[h.join(group)].error, "sync": h.replies[h.sync(group, "m", 1)].error,
           "heartbeat": h.heartbeat(group, "m", 1), "leave": h.leave(group, "m")[0],
           "describe": c.describe_group(group).error, "delete": c.delete_groups(h.now, [group])[0][group],
           "offset_delete": c.offset_delete(h.now, group, [("t", 0)])[0]}
    plan = c.offset_commit(h.now, OffsetCommitRequest(group, -1, "", [("t", 0, 1, -1, "")]))
    out["commit"] = plan.errors[("t", 0)]
    return out


def test_groups_of_partitions_not_loaded_get_not_coordinator():
    h = Harness(offsets_topic_num_partitions=PARTITIONS)
    h.apply(h.c.unload_partition(1))
    assert set(every_request_error(h, B).values()) == {E.NOT_COORDINATOR}
    assert h.c.coordinator_error(A) == E.NONE and h.c.coordinator_error(B) == E.NOT_COORDINATOR
    h.c.begin_loading(1)
    assert set(every_request_error(h, B).values()) == {E.COORDINATOR_LOAD_IN_PROGRESS}
    assert h.records == [] and B not in h.c.groups  # nothing created, nothing written
    h.stable_group(A)  # the loaded partition serves as usual
    assert h.state(A) == "Stable"


def test_loading_a_partition_keeps_the_other_partitions_groups():
    h = Harness(offsets_topic_num_partitions=PARTITIONS)
    (a,), gen_a = h.stable_group(A)
    (b,), _ = h.stable_group(B)
    h.commit(B, b, 1, {("t", 0): 5})
    b_records = [(k, v) for p, k, v in h.records if p == 1]
    h.apply(h.c.unload_partition(1))
    assert set(h.c.groups) == {A}
    h.apply(h.c.load_partition(1, b_records, h.now))
    assert set(h.c.groups) == {A, B} and h.state(A) == h.state(B) == "Stable"
    assert h.heartbeat(A, a, gen_a) == E.NONE  # A was not reloaded: its member is still the live one
    assert h.c.offset_fetch(B, [("t", 0)])[0][2].offset == 5
    # a partition's records of a group that belongs elsewhere are not its groups
    h.apply(h.c.load_partition(2, b_records, h.now))
    assert partition_for(B, PARTITIONS) == 1 and set(h.c.groups) == {A, B}


def test_unload_answers_parked_requests_drops_groups_and_voids_their_timers():
    h = Harness(offsets_topic_num_partitions=PARTITIONS)
    (a, b), gen = h.stable_group(B, n=2)
    rejoin = h.join(B, a)  # parks until b rejoins too
    C = group_in(1, "c")
    (x, _), (y, ty) = h.join_new(C), h.join_new(C)
    h.join(C, x)  # y's join made x rejoin; now both are in generation 1
    leader = h.replies[ty].leader
    follower = y if leader == x else x
    follower_sync = h.sync(C, follower, h.replies[ty].generation_id)  # parks until the leader's
    assert rejoin not in h.replies and follower_sync not in h.replies
    assert {key.group_id for key in h.timers} >= {B, C}
    fx = h.c.unload_partition(1)
    h.apply(fx)
    assert h.replies[rejoin].error == E.NOT_COORDINATOR and h.replies[follower_sync].error == E.NOT_COORDINATOR
    assert fx.records == [] and sorted(fx.cancel_group_timers) == sorted([B, C])
    assert not h.c.groups and not {key.group_id for key in h.timers} & {B, C}
    # a timer that fires anyway is harmless
    assert not h.c.timer_fired(TimerKey(TimerKind.SESSION, B, a), h.now + 10**6).replies


def test_a_commit_persisted_across_an_unload_is_not_applied():
    h = Harness(offsets_topic_num_partitions=PARTITIONS)
    plan = h.c.offset_commit(h.now, OffsetCommitRequest(B, -1, "", [("t", 0, 7, -1, "")]))
    assert plan.errors == {("t", 0): E.NONE}
    h.apply(h.c.unload_partition(1))  # leadership moved while the records were being appended
    h.c.apply_commit(plan, h.now)
    assert B not in h.c.groups


def test_a_new_coordinator_serves_nothing_until_it_loads():
    c = GroupCoordinator()
    assert c.coordinator_error("g") == E.NOT_COORDINATOR
    c.load_partition(c.partition_for("g"), [], 0)
    assert c.coordinator_error("g") == E.NONE


# ------------------------------------------------------------ state changes as log lines (issue #12)


def test_every_group_state_change_is_one_event_naming_the_group():
    h = Harness(offsets_retention_minutes=1, offsets_retention_check_interval_ms=60_000)
    h.apply(h.c.start(h.now))
    (a, b), gen = h.stable_group("g", n=2)
    h.leave("g", b)
    token = h.join("g", a)
    h.sync("g", a, h.replies[token].generation_id, [(a, b"x")])
    h.advance(10_000)  # a misses its session timeout
    h.commit("solo", "", -1, {("t", 0): 1})
    h.advance(120_000)  # solo's offset expires: the group is dead
    h.commit("old", "", -1, {("t", 0): 1})
    h.apply(h.c.delete_groups(h.now, ["old"])[1])

    def having(*words):
        return [e for e in h.events if all(w in e for w in words)]

    assert all(e.startswith(("group g: ", "group solo: ", "group old: ")) for e in h.events), h.events
    assert len(having(f"g: member {a} joined")) == len(having(f"g: member {b} joined")) == 1
    assert len(having("rebalance started")) == 4  # first join, b's join, b's leave, a's expiry
    assert having(f"g: member {b} left") and having(f"g: member {a} expired", "10000 ms")
    assert having("generation 1 formed with 1 member(s)") and having("generation 2 formed with 2 member(s)")
    assert having("generation 3 is Stable", "1 member(s)")
    assert having("group g: now Empty, generation 4")
    assert having("group solo: 1 committed offset(s) expired") and having("group solo: Dead")
    assert having("group old: deleted")
