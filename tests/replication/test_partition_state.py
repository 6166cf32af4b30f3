"""The leader's replication rules (partition_state.py), with time passed in."""

from kafkalite.replication.partition_state import PartitionState

LEADER, F1, F2 = 1, 2, 3
LAG_MS = 30_000


def three_replicas(now: int = 0, hw: int = 0) -> PartitionState:
    return PartitionState.leader(LEADER, (LEADER, F1, F2), (LEADER, F1, F2), leader_epoch=4, high_watermark=hw,
                                 now_ms=now)


def test_alone_in_the_isr_the_high_watermark_is_the_leaders_own_end():
    state = PartitionState.leader(LEADER, (LEADER,), (LEADER,), 0, 0, 0)
    assert state.advance(5) and state.high_watermark == 5
    assert not state.advance(5)


def test_the_high_watermark_is_the_lowest_end_over_the_isr():
    state = three_replicas()
    assert not state.advance(10), "followers have fetched nothing: nothing is replicated"
    state.follower_fetched(F1, 7, leader_end=10, now_ms=1)
    state.follower_fetched(F2, 4, leader_end=10, now_ms=1)
    assert state.advance(10) and state.high_watermark == 4
    state.follower_fetched(F2, 10, leader_end=10, now_ms=2)
    assert state.advance(10) and state.high_watermark == 7


def test_the_high_watermark_never_goes_backwards():
    state = three_replicas(hw=8)
    state.follower_fetched(F1, 3, leader_end=10, now_ms=1)
    state.follower_fetched(F2, 3, leader_end=10, now_ms=1)
    assert not state.advance(10)
    assert state.high_watermark == 8


def test_a_follower_behind_for_longer_than_the_lag_limit_is_a_shrink_candidate():
    state = three_replicas(now=0)
    state.follower_fetched(F1, 10, leader_end=10, now_ms=LAG_MS)  # caught up
    state.follower_fetched(F2, 5, leader_end=10, now_ms=LAG_MS)  # behind since it became follower at 0
    assert state.lagging_followers(now_ms=LAG_MS, max_lag_ms=LAG_MS) == []
    assert state.lagging_followers(now_ms=LAG_MS + 1, max_lag_ms=LAG_MS) == [F2]


def test_a_follower_that_reached_the_high_watermark_may_rejoin_the_isr():
    state = PartitionState.leader(LEADER, (LEADER, F1, F2), (LEADER, F1), 4, 0, 0)
    state.follower_fetched(F1, 6, leader_end=6, now_ms=1)
    assert state.advance(6) and state.high_watermark == 6
    state.follower_fetched(F2, 5, leader_end=6, now_ms=1)
    assert state.followers_to_add() == []
    state.follower_fetched(F2, 6, leader_end=6, now_ms=2)
    assert state.followers_to_add() == [F2]


def test_a_follower_that_stopped_fetching_is_not_a_candidate_just_because_its_last_fetch_was_caught_up():
    """followers_to_add() names every replica whose last fetch reached the high watermark; the replica manager
    only proposes the one fetching right now (tests/replication/test_isr.py)."""
    state = PartitionState.leader(LEADER, (LEADER, F1, F2), (LEADER, F1), 4, 0, 0)
    state.follower_fetched(F2, 0, leader_end=0, now_ms=1)  # then it died
    assert F2 in state.followers_to_add()
