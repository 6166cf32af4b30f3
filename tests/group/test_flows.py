"""Group coordinator scenarios, with time driven by the test."""

from group_harness import RANGE, REBALANCE, SESSION, Harness, subscription

from kafkalite.group import TimerKey
from kafkalite.group import TimerKind as K
from kafkalite.group.coordinator import FENCED_INSTANCE_ID, GroupState
from kafkalite.protocol.errors import ErrorCode as E


def test_single_consumer_joins_syncs_and_is_persisted():
    h = Harness(initial_rebalance_delay_ms=100)
    first = h.join("g")
    assert h.replies[first].error == E.MEMBER_ID_REQUIRED
    member_id = h.replies[first].member_id
    assert member_id.startswith("c-")
    second = h.join("g", member_id)
    assert second not in h.replies  # parked through the initial delay
    assert h.state() == "PreparingRebalance"
    h.advance(99)
    assert second not in h.replies
    h.advance(1)
    result = h.replies[second]
    assert (result.error, result.generation_id, result.leader, result.protocol_name) == (E.NONE, 1, member_id, "range")
    assert result.members == [(member_id, None, RANGE[0][1])]
    assert h.state() == "CompletingRebalance"
    sync = h.sync("g", member_id, 1, [(member_id, b"assignment")])
    assert h.replies[sync].error == E.NONE and h.replies[sync].assignment == b"assignment"
    assert h.state() == "Stable"
    assert len(h.records) == 1 and h.records[0][2] is not None  # the group's metadata


def test_default_initial_delay_leaves_time_for_a_first_message():
    from kafkalite.group import GroupConfig

    assert GroupConfig().initial_rebalance_delay_ms <= 300


def test_initial_delay_extends_while_members_arrive_up_to_the_rebalance_timeout():
    h = Harness(initial_rebalance_delay_ms=100)
    a, ta = h.join_new("g", rebalance=250)
    h.advance(50)
    b, tb = h.join_new("g", rebalance=250)
    h.advance(50)  # t=100: b arrived during the delay, so wait another 100
    assert ta not in h.replies
    h.advance(60)
    c, tc = h.join_new("g", rebalance=250)  # t=160
    h.advance(40)  # t=200: c arrived, only 50 ms of the 250 ms rebalance timeout remain
    assert ta not in h.replies
    h.advance(49)
    assert ta not in h.replies
    h.advance(1)  # t=250
    results = [h.replies[t] for t in (ta, tb, tc)]
    assert {r.generation_id for r in results} == {1}
    assert results[0].leader == a and len(results[0].members) == 3
    assert results[1].members == [] and results[2].members == []


def test_zero_initial_delay_completes_at_once():
    h = Harness(initial_rebalance_delay_ms=0)
    member_id, token = h.join_new("g")
    assert h.replies[token].error == E.NONE


def test_v3_join_gets_a_member_id_without_a_round_trip():
    h = Harness()
    token = h.join("g", v4=False)
    assert h.replies[token].error == E.NONE and h.replies[token].member_id.startswith("c-")


def test_protocol_chosen_by_votes_among_common_protocols():
    h = Harness(initial_rebalance_delay_ms=100)
    meta = b"m"
    a, ta = h.join_new("g", protocols=[("range", meta), ("roundrobin", meta), ("sticky", meta)])
    b, tb = h.join_new("g", protocols=[("roundrobin", meta), ("range", meta)])
    c, tc = h.join_new("g", protocols=[("sticky", meta), ("roundrobin", meta), ("range", meta)])
    h.advance(1000)
    # common: range, roundrobin; votes: a range, b roundrobin, c roundrobin
    assert h.replies[ta].protocol_name == "roundrobin"


def test_vote_tie_goes_to_the_leaders_preference():
    h = Harness(initial_rebalance_delay_ms=100)
    a, ta = h.join_new("g", protocols=[("roundrobin", b""), ("range", b"")])
    b, tb = h.join_new("g", protocols=[("range", b""), ("roundrobin", b"")])
    h.advance(1000)
    assert h.replies[ta].protocol_name == "roundrobin"


def test_inconsistent_protocols_are_refused():
    h = Harness()
    h.stable_group("g")
    token = h.join("g", protocols=[("sticky", b"")])
    assert h.replies[token].error == E.INCONSISTENT_GROUP_PROTOCOL
    token = h.join("g", protocol_type="connect")
    assert h.replies[token].error == E.INCONSISTENT_GROUP_PROTOCOL
    token = h.join("other", protocols=[])
    assert h.replies[token].error == E.INCONSISTENT_GROUP_PROTOCOL
    assert "other" not in h.c.groups  # a refused first join leaves no group behind


def test_session_timeout_bounds_are_checked():
    h = Harness()
    assert h.replies[h.join("g", session=5999)].error == E.INVALID_SESSION_TIMEOUT
    assert h.replies[h.join("g", session=1_800_001)].error == E.INVALID_SESSION_TIMEOUT
    assert h.replies[h.join("", session=SESSION)].error == E.INVALID_GROUP_ID


def test_new_member_rebalances_a_stable_group():
    h = Harness()
    (a,), gen = h.stable_group("g")
    b, tb = h.join_new("g")
    assert h.state() == "PreparingRebalance" and tb not in h.replies
    assert h.heartbeat("g", a, gen) == E.REBALANCE_IN_PROGRESS
    ta = h.join("g", a)
    ra, rb = h.replies[ta], h.replies[tb]
    assert ra.generation_id == rb.generation_id == gen + 1
    assert ra.leader == a and {m[0] for m in ra.members} == {a, b} and rb.members == []
    sb = h.sync("g", b, gen + 1)
    assert sb not in h.replies  # followers wait for the leader's assignment
    sa = h.sync("g", a, gen + 1, [(a, b"A"), (b, b"B")])
    assert h.replies[sa].assignment == b"A" and h.replies[sb].assignment == b"B"
    assert h.heartbeat("g", b, gen + 1) == E.NONE


def test_rebalance_timeout_drops_members_that_do_not_rejoin():
    h = Harness()
    (a,), gen = h.stable_group("g", rebalance=REBALANCE)
    b, tb = h.join_new("g")
    for _ in range(REBALANCE // 5000 - 1):  # a heartbeats (and hears of the rebalance) but never rejoins
        h.advance(5000)
        assert h.heartbeat("g", a, gen) == E.REBALANCE_IN_PROGRESS
    h.advance(4999)
    assert tb not in h.replies
    h.advance(1)
    result = h.replies[tb]
    assert result.error == E.NONE and result.leader == b and [m[0] for m in result.members] == [b]
    assert a not in h.c.groups["g"].members


def test_session_timeout_expires_silent_members():
    h = Harness()
    (a, b), gen = h.stable_group("g", n=2)
    for _ in range(3):  # a keeps heartbeating, b is silent
        h.advance(SESSION // 4)
        assert h.heartbeat("g", a, gen) == E.NONE
    h.advance(SESSION // 4)
    assert b not in h.c.groups["g"].members
    assert h.state() == "PreparingRebalance"
    assert h.heartbeat("g", a, gen) == E.REBALANCE_IN_PROGRESS
    ta = h.join("g", a)
    assert h.replies[ta].generation_id == gen + 1 and [m[0] for m in h.replies[ta].members] == [a]


def test_heartbeats_keep_a_member_forever():
    h = Harness()
    (a,), gen = h.stable_group("g")
    for _ in range(100):
        h.advance(SESSION - 1)
        assert h.heartbeat("g", a, gen) == E.NONE
    assert h.state() == "Stable"


def test_last_member_expiring_empties_the_group_and_persists_it():
    h = Harness()
    (a,), gen = h.stable_group("g")
    h.records.clear()
    h.advance(SESSION)
    group = h.c.groups["g"]
    assert group.state == GroupState.EMPTY and group.generation_id == gen + 1 and not group.members
    assert len(h.records) == 1


def test_pending_member_id_expires():
    h = Harness()
    first = h.join("g")
    member_id = h.replies[first].member_id
    h.advance(SESSION)
    assert "g" not in h.c.groups
    token = h.join("g", member_id)
    assert h.replies[token].error == E.UNKNOWN_MEMBER_ID


def test_pending_member_holds_the_rebalance_until_it_rejoins():
    h = Harness()
    (a,), gen = h.stable_group("g")
    first = h.join("g")  # MEMBER_ID_REQUIRED, then a rebalance is not started yet
    assert h.state() == "Stable"
    ta = h.join("g", a)  # the leader rejoins: rebalance, but the pending member is awaited
    assert ta not in h.replies
    tb = h.join("g", h.replies[first].member_id)
    assert h.replies[ta].generation_id == h.replies[tb].generation_id == gen + 1


def test_leave_group_single_and_batched():
    h = Harness()
    (a, b, c), gen = h.stable_group("g", n=3)
    assert h.leave("g", a) == (E.NONE, [E.NONE])
    assert h.state() == "PreparingRebalance"
    code, codes = h.leave("g", b, c, "nobody")
    assert codes == [E.NONE, E.NONE, E.UNKNOWN_MEMBER_ID]
    assert h.state() == "Empty"
    assert h.leave("nogroup", "x") == (E.NONE, [E.UNKNOWN_MEMBER_ID])
    assert h.leave("", "x")[0] == E.INVALID_GROUP_ID


def test_leaving_member_with_a_parked_join_is_answered():
    h = Harness()
    (a, b), gen = h.stable_group("g", n=2)
    ta = h.join("g", a)  # leader rejoin starts a rebalance; a waits for b
    h.leave("g", b)
    assert h.replies[ta].error == E.NONE and h.replies[ta].generation_id == gen + 1
    s = h.sync("g", a, gen + 1)
    assert h.replies[s].error == E.NONE  # the lone leader's sync completes at once
    c, tc = h.join_new("g")  # c waits in JoinGroup for a, then leaves
    h.leave("g", c)
    assert h.replies[tc].error == E.UNKNOWN_MEMBER_ID


def test_sync_errors():
    h = Harness()
    (a,), gen = h.stable_group("g")
    assert h.replies[h.sync("g", "nobody", gen)].error == E.UNKNOWN_MEMBER_ID
    assert h.replies[h.sync("g", a, gen + 5)].error == E.ILLEGAL_GENERATION
    assert h.replies[h.sync("nogroup", a, gen)].error == E.UNKNOWN_MEMBER_ID
    assert h.replies[h.sync("g", a, gen, protocol_type="connect")].error == E.INCONSISTENT_GROUP_PROTOCOL
    assert h.replies[h.sync("g", a, gen, protocol_name="sticky")].error == E.INCONSISTENT_GROUP_PROTOCOL
    ok = h.sync("g", a, gen, protocol_type="consumer", protocol_name="range")
    assert h.replies[ok].error == E.NONE and h.replies[ok].assignment == a.encode()
    b, tb = h.join_new("g")
    assert h.replies[h.sync("g", a, gen)].error == E.REBALANCE_IN_PROGRESS


def test_rebalance_during_completing_answers_parked_syncs():
    h = Harness()
    (a, b), gen = h.stable_group("g", n=2)
    ta, _ = h.join("g", a), h.join("g", b)
    gen2 = h.replies[ta].generation_id
    sb = h.sync("g", b, gen2)
    assert sb not in h.replies
    c, tc = h.join_new("g")  # a newcomer before the leader synced
    assert h.replies[sb].error == E.REBALANCE_IN_PROGRESS
    assert h.state() == "PreparingRebalance"


def test_members_that_never_sync_are_removed_after_the_rebalance_timeout():
    h = Harness()
    (a, b), gen = h.stable_group("g", n=2)
    ta, _ = h.join("g", a), h.join("g", b)
    gen2 = h.replies[ta].generation_id
    h.sync("g", a, gen2, [(a, b"A"), (b, b"B")])
    assert h.state() == "Stable"
    for _ in range(4):  # a stays alive; b never syncs
        h.advance(REBALANCE // 4)
        h.heartbeat("g", a, gen2)
    assert b not in h.c.groups["g"].members
    assert h.state() == "PreparingRebalance"


def test_follower_parked_on_sync_outlives_its_session_while_the_leader_assigns():
    h = Harness()
    (a, b), gen = h.stable_group("g", n=2)
    ta, _ = h.join("g", a), h.join("g", b)
    gen2 = h.replies[ta].generation_id
    sb = h.sync("g", b, gen2)
    h.advance(SESSION - 1)
    h.heartbeat("g", a, gen2)
    h.advance(SESSION // 2)
    assert b in h.c.groups["g"].members
    h.sync("g", a, gen2, [(a, b"A"), (b, b"B")])
    assert h.replies[sb].assignment == b"B"


def test_static_member_rejoin_keeps_assignment_without_rebalance():
    h = Harness()
    a, ta = h.join_new("g", instance="i-a")
    assert h.replies[ta].error == E.NONE  # static members skip MEMBER_ID_REQUIRED
    gen = h.replies[ta].generation_id
    h.sync("g", a, gen, [(a, b"A")])
    h.records.clear()
    again = h.join("g", instance="i-a")  # restarted: no member id
    result = h.replies[again]
    new_id = result.member_id
    assert result.error == E.NONE and new_id != a and result.generation_id == gen
    assert result.leader == new_id  # it was the leader: the leader id moves with it
    assert h.state() == "Stable" and len(h.records) == 1
    assert h.heartbeat("g", a, gen, "i-a") == FENCED_INSTANCE_ID
    assert h.replies[h.sync("g", a, gen, group_instance_id="i-a")].error == FENCED_INSTANCE_ID
    assert h.replies[h.join("g", a, instance="i-a")].error == FENCED_INSTANCE_ID
    assert h.replies[h.sync("g", new_id, gen, group_instance_id="i-a")].assignment == b"A"
    assert h.heartbeat("g", new_id, gen, "i-a") == E.NONE


def test_static_member_with_changed_subscription_rebalances():
    h = Harness()
    a, ta = h.join_new("g", instance="i-a")
    h.sync("g", a, h.replies[ta].generation_id, [(a, b"A")])
    again = h.join("g", instance="i-a", protocols=[("range", subscription("t", "u"))])
    assert h.replies[again].generation_id == 2


def test_static_member_replaced_during_rebalance_fences_the_old_join():
    h = Harness()
    (a,), gen = h.stable_group("g")
    s, ts = h.join_new("g", instance="i-s")  # rebalance: a must rejoin
    assert ts not in h.replies
    again = h.join("g", instance="i-s")  # s restarts while waiting
    assert h.replies[ts].error == FENCED_INSTANCE_ID
    ta = h.join("g", a)
    assert h.replies[again].error == E.NONE and h.replies[ta].error == E.NONE


def test_static_member_stays_through_a_rebalance_it_misses_until_its_session_ends():
    h = Harness()
    s, ts = h.join_new("g", instance="i-s")
    gen = h.replies[ts].generation_id
    h.sync("g", s, gen, [(s, b"S")])
    b, tb = h.join_new("g")
    for _ in range(REBALANCE // 5000 - 1):  # s heartbeats but does not rejoin
        h.advance(5000)
        h.heartbeat("g", s, gen, "i-s")
    h.advance(5000)
    result = h.replies[tb]
    assert result.error == E.NONE and result.leader == b
    assert {m[0] for m in result.members} == {s, b}  # s keeps its place in the new generation
    h.sync("g", b, result.generation_id, [(s, b"S"), (b, b"B")])
    for _ in range(3):  # now s is silent: its session ends, and the group rebalances without it
        h.advance(SESSION // 2)
        h.heartbeat("g", b, result.generation_id)
    assert s not in h.c.groups["g"].members and h.state() == "PreparingRebalance"


def test_static_member_leaves_by_instance_id():
    h = Harness()
    s, ts = h.join_new("g", instance="i-s")
    h.sync("g", s, h.replies[ts].generation_id, [(s, b"S")])
    assert h.leave("g", ("", "i-x")) == (E.NONE, [E.UNKNOWN_MEMBER_ID])
    assert h.leave("g", ("other", "i-s")) == (E.NONE, [FENCED_INSTANCE_ID])
    assert h.leave("g", ("", "i-s")) == (E.NONE, [E.NONE])
    assert h.state() == "Empty"


def test_offset_commit_validation():
    h = Harness(offset_metadata_max_bytes=10)
    tp = {("t", 0): 5}
    assert h.commit("solo", "", -1, tp) == {("t", 0): E.NONE}  # assign() users
    assert h.c.offset_fetch("solo", [("t", 0)])[0][2].offset == 5
    assert h.commit("nogroup", "m", 3, tp) == {("t", 0): E.ILLEGAL_GENERATION}
    (a,), gen = h.stable_group("g")
    assert h.commit("g", "", -1, tp) == {("t", 0): E.UNKNOWN_MEMBER_ID}
    assert h.commit("g", "nobody", gen, tp) == {("t", 0): E.UNKNOWN_MEMBER_ID}
    assert h.commit("g", a, gen + 1, tp) == {("t", 0): E.ILLEGAL_GENERATION}
    assert h.commit("g", a, gen, tp) == {("t", 0): E.NONE}
    plan = h.c.offset_commit(h.now, __import__("kafkalite.group", fromlist=["x"]).OffsetCommitRequest(
        "g", gen, a, [("t", 1, 7, -1, "x" * 11), ("t", 2, 7, 3, "ok")]))
    assert plan.errors == {("t", 1): E.OFFSET_METADATA_TOO_LARGE, ("t", 2): E.NONE}
    assert list(plan.accepted) == [("t", 2)] and len(plan.effects.records) == 1
    b, tb = h.join_new("g")  # PreparingRebalance: commits with the old generation still count
    assert h.commit("g", a, gen, tp) == {("t", 0): E.NONE}
    h.join("g", a)  # CompletingRebalance
    assert h.commit("g", a, gen + 1, tp) == {("t", 0): E.REBALANCE_IN_PROGRESS}


def test_offset_commit_from_a_fenced_static_member():
    h = Harness()
    s, ts = h.join_new("g", instance="i-s")
    gen = h.replies[ts].generation_id
    assert h.commit("g", "stale", gen, {("t", 0): 1}, instance="i-s") == {("t", 0): FENCED_INSTANCE_ID}


def test_offset_commit_is_not_visible_before_it_is_applied():
    h = Harness()
    from kafkalite.group import OffsetCommitRequest

    plan = h.c.offset_commit(0, OffsetCommitRequest("solo", -1, "", [("t", 0, 9, -1, None)]))
    assert h.c.offset_fetch("solo", [("t", 0)]) == [("t", 0, None)]
    h.c.apply_commit(plan, 0)
    assert h.c.offset_fetch("solo", None)[0][2].offset == 9


def test_offset_fetch_all_and_unknown():
    h = Harness()
    h.commit("solo", "", -1, {("b", 1): 2, ("a", 0): 1})
    assert [(t, p, o.offset) for t, p, o in h.c.offset_fetch("solo")] == [("a", 0, 1), ("b", 1, 2)]
    assert h.c.offset_fetch("nogroup") == []
    assert h.c.offset_fetch("nogroup", [("a", 0)]) == [("a", 0, None)]


def test_offset_delete():
    h = Harness()
    assert h.c.offset_delete(0, "nogroup", [("t", 0)])[0] == E.GROUP_ID_NOT_FOUND
    (a,), gen = h.stable_group("g")  # subscribed to "t"
    h.commit("g", a, gen, {("t", 0): 1, ("u", 0): 2})
    h.records.clear()
    code, results, fx = h.c.offset_delete(h.now, "g", [("t", 0), ("u", 0)])
    assert code == E.NONE and results == {("t", 0): 86, ("u", 0): E.NONE}
    assert [r[2] for r in fx.records] == [None]
    assert [t for t, _, _ in h.c.offset_fetch("g")] == ["t"]
    h.leave("g", a)
    code, results, fx = h.c.offset_delete(h.now, "g", [("t", 0)])
    assert results == {("t", 0): E.NONE} and h.c.offset_fetch("g") == []


def test_offset_delete_in_a_non_consumer_group_in_use():
    h = Harness()
    h.stable_group("g", protocol_type="connect")
    assert h.c.offset_delete(h.now, "g", [("t", 0)])[0] == E.NON_EMPTY_GROUP


def test_describe_list_and_delete_groups():
    h = Harness()
    (a,), gen = h.stable_group("g")
    h.commit("solo", "", -1, {("t", 0): 1})
    d = h.c.describe_group("g")
    assert (d.state, d.protocol_type, d.protocol_data) == ("Stable", "consumer", "range")
    assert d.members[0].member_id == a and d.members[0].assignment == a.encode()
    assert d.members[0].metadata == RANGE[0][1] and d.members[0].client_host == "/127.0.0.1"
    assert h.c.describe_group("nogroup").state == "Dead"
    assert h.c.list_groups() == [("g", "consumer", "Stable"), ("solo", "", "Empty")]
    assert h.c.list_groups(["empty"]) == [("solo", "", "Empty")]
    assert h.c.list_groups(["Stable", "Empty"]) == h.c.list_groups()
    results, fx = h.c.delete_groups(h.now, ["g", "solo", "nogroup"])
    assert results == {"g": E.NON_EMPTY_GROUP, "solo": E.NONE, "nogroup": E.GROUP_ID_NOT_FOUND}
    assert [r[2] for r in fx.records] == [None]  # the offset; solo never had metadata
    assert "solo" not in h.c.groups


def test_describe_hides_metadata_but_keeps_last_assignments_while_rebalancing():
    """As Kafka 4 (tests/differential/test_scenarios.py compares it): the protocol and the members' metadata are
    hidden until the group is Stable again, each member's last assignment is still shown; a new one has none."""
    h = Harness()
    (a,), gen = h.stable_group("g")
    assigned = h.c.groups["g"].members[a].assignment
    assert assigned
    newcomer, _ = h.join_new("g")
    d = h.c.describe_group("g")
    assert d.state == "PreparingRebalance" and d.protocol_data == ""
    assert all(m.metadata == b"" for m in d.members)
    assert {m.member_id: m.assignment for m in d.members if m.member_id == a} == {a: assigned}
    assert [m.assignment for m in d.members if m.member_id == newcomer] == [b""]


def test_stale_timers_are_harmless():
    h = Harness()
    (a,), gen = h.stable_group("g")
    for kind, group, subject in [(K.SESSION, "g", a), (K.JOIN, "g", 0), (K.SYNC, "g", 99), (K.PENDING, "g", "x"),
                                 (K.SESSION, "nogroup", "x"), (K.JOIN, "nogroup", 1)]:
        fx = h.c.timer_fired(TimerKey(kind, group, subject), h.now)
        assert not fx.replies and not fx.records
    assert h.state() == "Stable" and a in h.c.groups["g"].members


def test_group_max_size_refuses_new_members_beyond_it_and_lets_known_ones_back():
    h = Harness(max_size=2)
    (leader, other), generation = h.stable_group("g", n=2)
    third = h.join("g")
    assert h.replies[third].error == E.GROUP_MAX_SIZE_REACHED
    assert h.state() == "Stable" and len(h.c.groups["g"].members) == 2  # nothing disturbed
    assert h.heartbeat("g", other, generation) == E.NONE
    # Once one leaves there is room again.
    h.leave("g", other)
    newcomer, token = h.join_new("g")
    assert newcomer is not None and h.c.groups["g"].members.keys() == {leader, newcomer}


def test_group_max_size_sheds_the_last_members_to_rejoin_after_it_is_lowered():
    h = Harness()
    members, generation = h.stable_group("g", n=3)
    h.c.config = type(h.c.config)(**{**h.c.config.__dict__, "max_size": 2})
    first, second, last = members
    h.join("g", first)
    h.join("g", second)
    refused = h.join("g", last)
    assert h.replies[refused].error == E.GROUP_MAX_SIZE_REACHED
