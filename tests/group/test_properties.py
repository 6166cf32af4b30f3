"""Random request sequences against the coordinator: invariants hold after every step, and every
parked request is answered once time moves on."""

from group_harness import Harness
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkalite.group.coordinator import GroupState

MEMBERS = 4

op = st.one_of(
    st.tuples(st.just("join_new"), st.integers(0, MEMBERS - 1), st.booleans()),
    st.tuples(st.just("join"), st.integers(0, MEMBERS - 1)),
    st.tuples(st.just("static_join"), st.integers(0, 1)),
    st.tuples(st.just("sync"), st.integers(0, MEMBERS - 1)),
    st.tuples(st.just("heartbeat"), st.integers(0, MEMBERS - 1)),
    st.tuples(st.just("leave"), st.integers(0, MEMBERS - 1)),
    st.tuples(st.just("commit"), st.integers(0, MEMBERS - 1)),
    st.tuples(st.just("advance"), st.integers(0, 40_000)),
    st.tuples(st.just("delete"),),
)


def check_invariants(h: Harness, last_generation: int) -> int:
    group = h.c.groups.get("g")
    if group is None:
        return 0
    members = group.members.values()
    assert group.state != GroupState.DEAD
    if group.state == GroupState.EMPTY:
        assert not group.members
    elif not group.members:
        # As in Kafka: a rebalance with no members left still runs to its end, waiting for members that were
        # given an id (MEMBER_ID_REQUIRED) or for the initial delay; then the group is Empty (checked below).
        assert group.state == GroupState.PREPARING_REBALANCE
        assert group.pending_members or group.in_initial_delay
    if group.members:
        assert group.leader_id in group.members
    if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY):
        assert all(m.join_token is None for m in members)
    if group.state != GroupState.COMPLETING_REBALANCE:
        assert all(m.sync_token is None for m in members)
    for instance, member_id in group.static_members.items():
        assert group.members[member_id].group_instance_id == instance
    assert group.generation_id >= last_generation
    return group.generation_id


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=40), st.sampled_from([0, 100]))
def test_random_requests_keep_the_invariants(ops, delay):
    h = Harness(initial_rebalance_delay_ms=delay)
    ids: list[str | None] = [None] * MEMBERS
    generation = 0
    for step in ops:
        kind = step[0]
        group = h.c.groups.get("g")
        gen = group.generation_id if group else 0
        if kind == "join_new":
            _, i, v4 = step
            t = h.join("g", v4=v4)
            r = h.replies.get(t)
            if r is not None and r.member_id:
                ids[i] = r.member_id
        elif kind == "static_join":
            t = h.join("g", instance=f"i{step[1]}")
            r = h.replies.get(t)
            if r is not None and r.member_id:
                ids[step[1]] = r.member_id
        elif kind == "advance":
            h.advance(step[1])
        elif kind == "delete":
            h.apply(h.c.delete_groups(h.now, ["g"])[1])
        elif ids[step[1]] is not None:
            member = ids[step[1]]
            if kind == "join":
                h.join("g", member)
            elif kind == "sync":
                h.sync("g", member, gen, [(member, b"x")])
            elif kind == "heartbeat":
                h.heartbeat("g", member, gen)
            elif kind == "leave":
                h.leave("g", member)
            elif kind == "commit":
                h.commit("g", member, gen, {("t", 0): step[1]})
        generation = check_invariants(h, generation)
    h.advance(3_600_000)
    check_invariants(h, generation)
    assert all(t in h.replies for t in h.issued), "a request stayed parked"
    assert h.state() in ("Empty", "Dead")
