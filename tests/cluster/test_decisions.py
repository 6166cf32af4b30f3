"""The controller's pure decisions (cluster/decisions.py)."""

import collections

import pytest

from kafkalite.cluster.decisions import (
    cancel_reassignment, elect_leader, expand_isr, place_replicas, preferred_leader, shrink_isr, start_reassignment,
    step_reassignment,
)
from kafkalite.metadata.image import NO_LEADER, PartitionInfo

P = PartitionInfo(replicas=(1, 2, 3), leader=1, leader_epoch=5, isr=(1, 2, 3), partition_epoch=9)


def test_a_live_leader_in_the_isr_keeps_its_epoch():
    assert elect_leader(P, {1, 2, 3}) == P


def test_a_dead_leader_is_replaced_by_the_next_live_isr_replica_at_the_next_epoch():
    after = elect_leader(P, {2, 3})
    assert (after.leader, after.leader_epoch, after.isr) == (2, 6, (2, 3))
    assert after.partition_epoch == 10


def test_a_replica_out_of_the_isr_is_not_elected_unless_unclean_election_is_on():
    behind = PartitionInfo((1, 2, 3), 1, 5, (1,), 9)
    offline = elect_leader(behind, {2, 3})
    assert offline.leader == NO_LEADER and offline.isr == (1,), "the ISR was emptied or an unclean leader won"
    unclean = elect_leader(behind, {2, 3}, unclean=True)
    assert (unclean.leader, unclean.isr, unclean.leader_epoch) == (2, (2,), 6)


def test_a_leader_shutting_down_hands_over_to_a_live_isr_member():
    after = elect_leader(P, {1, 2, 3}, excluded=frozenset({1}))
    assert after.leader == 2 and after.isr == (1, 2, 3) and after.leader_epoch == 6


def test_the_last_live_replica_keeps_leading_while_it_shuts_down():
    alone = PartitionInfo((1, 2, 3), 1, 5, (1, 2, 3), 9)
    assert elect_leader(alone, {1}, excluded=frozenset({1})).leader == 1


def test_isr_shrinks_without_emptying_and_expands_in_replica_order():
    shrunk = shrink_isr(P, [2, 3, 1])
    assert shrunk.isr == (1,) and shrunk.leader == 1 and shrunk.leader_epoch == 5
    grown = expand_isr(shrunk, [3, 7])
    assert grown.isr == (1, 3), "a non-replica joined the ISR, or the order is off"
    assert grown.partition_epoch == shrunk.partition_epoch + 1


def test_preferred_leader_returns_leadership_to_the_first_replica():
    moved = PartitionInfo((1, 2, 3), 2, 6, (1, 2, 3), 10)
    back = preferred_leader(moved, {1, 2, 3})
    assert back.leader == 1 and back.leader_epoch == 7
    assert preferred_leader(moved, {2, 3}) == moved  # the preferred one is down


def test_placement_spreads_leaders_and_replicas_evenly_and_never_repeats_a_broker():
    brokers = {1: None, 2: None, 3: None, 4: None}
    placed = place_replicas(brokers, 12, 3, start=1)
    assert all(len(set(r)) == 3 for r in placed)
    leaders = collections.Counter(r[0] for r in placed)
    replicas = collections.Counter(b for r in placed for b in r)
    assert set(leaders.values()) == {3} and set(replicas.values()) == {9}
    with pytest.raises(ValueError, match="replication factor 5"):
        place_replicas(brokers, 1, 5)


def test_rack_aware_placement_puts_replicas_on_different_racks():
    brokers = {1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}
    for replicas in place_replicas(brokers, 30, 3, start=2):
        assert len({brokers[b] for b in replicas}) == 3, replicas


def test_reassignment_adds_new_replicas_first_then_drops_the_old_once_they_are_in_sync():
    start = PartitionInfo((1, 2, 3), 1, 5, (1, 2, 3), 9)
    adding = start_reassignment(start, (2, 3, 4))
    assert adding.replicas == (2, 3, 4, 1) and adding.adding == (4,) and adding.removing == (1,)
    assert adding.leader == 1 and adding.target == (2, 3, 4)
    assert step_reassignment(adding, {1, 2, 3, 4}) == adding, "dropped old replicas before the new one caught up"
    caught_up = expand_isr(adding, [4])
    finished = step_reassignment(caught_up, {1, 2, 3, 4})
    assert finished.replicas == (2, 3, 4) and finished.isr == (2, 3, 4) and not finished.adding
    assert finished.leader == 2 and finished.leader_epoch == 6, "the leaving leader kept leadership"


def test_a_cancelled_reassignment_goes_back_to_the_old_replicas():
    adding = start_reassignment(PartitionInfo((1, 2, 3), 1, 5, (1, 2, 3), 9), (2, 3, 4))
    back = cancel_reassignment(adding)
    assert sorted(back.replicas) == [1, 2, 3] and not back.adding and not back.removing and back.leader == 1
