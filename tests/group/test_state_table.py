"""Every (group state, request) pair: the error returned and the state that follows.

Each state is built with one member `a` (gone again in Empty and Dead), generation `gen`, a
committed offset on t/0 and a subscription to topic t. In PreparingRebalance a second member
waits in JoinGroup for `a` to rejoin.
"""

import pytest
from group_harness import Harness

from kafkalite.group.coordinator import GROUP_SUBSCRIBED_TO_TOPIC
from kafkalite.protocol.errors import ErrorCode as E

PARKED = "parked"


def build(state: str):
    h = Harness()
    (a,), gen = h.stable_group("g")
    h.commit("g", a, gen, {("t", 0): 1})
    if state == "PreparingRebalance":
        h.join_new("g")
    elif state == "CompletingRebalance":
        token = h.join("g", a)  # the leader's rejoin starts and, alone, completes a rebalance
        gen = h.replies[token].generation_id
    elif state == "Empty":
        h.leave("g", a)
        gen = h.c.groups["g"].generation_id
    elif state == "Dead":
        h.leave("g", a)
        h.c.delete_groups(h.now, ["g"])
    assert h.state() == state
    return h, a, gen


def join_new_v4(h, a, gen):
    r = h.replies[h.join("g")]
    return r.error


def join_new_v3(h, a, gen):
    t = h.join("g", v4=False)
    return h.replies[t].error if t in h.replies else PARKED


def join_known(h, a, gen):
    t = h.join("g", a)
    return h.replies[t].error if t in h.replies else PARKED


def sync(h, a, gen):
    t = h.sync("g", a, gen, [(a, b"A")])
    return h.replies[t].error if t in h.replies else PARKED


def heartbeat(h, a, gen):
    return h.heartbeat("g", a, gen)


def leave(h, a, gen):
    return h.leave("g", a)[1][0]


def commit_member(h, a, gen):
    return h.commit("g", a, gen, {("t", 0): 2})[("t", 0)]


def commit_standalone(h, a, gen):
    return h.commit("g", "", -1, {("t", 0): 2})[("t", 0)]


def fetch(h, a, gen):
    [(_, _, committed)] = h.c.offset_fetch("g", [("t", 0)])
    return committed.offset if committed else None


def describe(h, a, gen):
    return h.c.describe_group("g").state


def list_groups(h, a, gen):
    return [state for group, _, state in h.c.list_groups() if group == "g"]


def delete(h, a, gen):
    results, fx = h.c.delete_groups(h.now, ["g"])
    h.apply(fx)
    return results["g"]


def offset_delete(h, a, gen):
    code, results, fx = h.c.offset_delete(h.now, "g", [("t", 0)])
    h.apply(fx)
    return code if code else results[("t", 0)]


P, C, S, EM, D = "PreparingRebalance", "CompletingRebalance", "Stable", "Empty", "Dead"

# request -> {state: (result, next state)}
TABLE = {
    join_new_v4: {
        EM: (E.MEMBER_ID_REQUIRED, EM), P: (E.MEMBER_ID_REQUIRED, P), C: (E.MEMBER_ID_REQUIRED, C),
        S: (E.MEMBER_ID_REQUIRED, S), D: (E.MEMBER_ID_REQUIRED, EM),
    },
    join_new_v3: {EM: (E.NONE, C), P: (PARKED, P), C: (PARKED, P), S: (PARKED, P), D: (E.NONE, C)},
    join_known: {
        EM: (E.UNKNOWN_MEMBER_ID, EM), P: (E.NONE, C), C: (E.NONE, C), S: (E.NONE, C),
        D: (E.UNKNOWN_MEMBER_ID, D),
    },
    sync: {EM: (E.UNKNOWN_MEMBER_ID, EM), P: (E.REBALANCE_IN_PROGRESS, P), C: (E.NONE, S), S: (E.NONE, S),
           D: (E.UNKNOWN_MEMBER_ID, D)},
    heartbeat: {EM: (E.UNKNOWN_MEMBER_ID, EM), P: (E.REBALANCE_IN_PROGRESS, P), C: (E.NONE, C), S: (E.NONE, S),
                D: (E.UNKNOWN_MEMBER_ID, D)},
    leave: {EM: (E.UNKNOWN_MEMBER_ID, EM), P: (E.NONE, C), C: (E.NONE, EM), S: (E.NONE, EM),
            D: (E.UNKNOWN_MEMBER_ID, D)},
    commit_member: {EM: (E.UNKNOWN_MEMBER_ID, EM), P: (E.NONE, P), C: (E.REBALANCE_IN_PROGRESS, C),
                    S: (E.NONE, S), D: (E.ILLEGAL_GENERATION, D)},
    commit_standalone: {EM: (E.NONE, EM), P: (E.UNKNOWN_MEMBER_ID, P), C: (E.UNKNOWN_MEMBER_ID, C),
                        S: (E.UNKNOWN_MEMBER_ID, S), D: (E.NONE, EM)},
    fetch: {EM: (1, EM), P: (1, P), C: (1, C), S: (1, S), D: (None, D)},
    describe: {EM: (EM, EM), P: (P, P), C: (C, C), S: (S, S), D: (D, D)},
    list_groups: {EM: ([EM], EM), P: ([P], P), C: ([C], C), S: ([S], S), D: ([], D)},
    delete: {EM: (E.NONE, D), P: (E.NON_EMPTY_GROUP, P), C: (E.NON_EMPTY_GROUP, C), S: (E.NON_EMPTY_GROUP, S),
             D: (E.GROUP_ID_NOT_FOUND, D)},
    offset_delete: {EM: (E.NONE, EM), P: (GROUP_SUBSCRIBED_TO_TOPIC, P), C: (GROUP_SUBSCRIBED_TO_TOPIC, C),
                    S: (GROUP_SUBSCRIBED_TO_TOPIC, S), D: (E.GROUP_ID_NOT_FOUND, D)},
}

CASES = [(state, request, *outcome) for request, row in TABLE.items() for state, outcome in row.items()]


def test_the_table_covers_every_pair():
    assert all(set(row) == {EM, P, C, S, D} for row in TABLE.values())


@pytest.mark.parametrize("state,request_,result,next_state", CASES,
                         ids=[f"{c[0]}-{c[1].__name__}" for c in CASES])
def test_state_request(state, request_, result, next_state):
    h, a, gen = build(state)
    assert request_(h, a, gen) == result
    assert h.state() == next_state


# timers: which ones change each state (the rest are no-ops there)
@pytest.mark.parametrize("state", [EM, P, C, S, D])
def test_session_expiry_in_every_state(state):
    h, a, gen = build(state)
    h.advance(10 * 60_000)  # nobody heartbeats: every member expires, every wait ends
    assert h.state() == {D: D}.get(state, EM)
    assert all(t in h.replies for t in h.issued)  # no request stays parked forever
