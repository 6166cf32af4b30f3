"""A follower's fetches in a fetch session (KIP-227): full, then only what changed; a new session after an error;
partitions the leader refuses left out until new metadata. The leader's side is the broker's own session cache,
so both ends of the protocol are exercised together."""

from __future__ import annotations

import asyncio
import types

import pytest

from kafkalite.broker.fetch_sessions import FetchSessionCache
from kafkalite.clock import ManualClock
from kafkalite.log.manager import LogManager
from kafkalite.metadata.image import BrokerInfo
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.record_batch import build_batch
from kafkalite.replication.fetcher import FollowerFetcher


class Leader:
    """A leader's answers through a real session cache: each partition has a high watermark and, when
    `refusing` names it, an error."""

    def __init__(self):
        self.cache = FetchSessionCache(ManualClock().now_ms)
        self.requests: list[dict] = []
        self.high_watermarks: dict[tuple[str, int], int] = {}
        self.refusing: dict[tuple[str, int], int] = {}
        self.fail_next = False

    async def request(self, api_key, version, body, timeout_s):
        self.requests.append(body)
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("the connection broke")
        plan = self.cache.plan(body)
        if plan.error:
            return {"error_code": plan.error, "session_id": 0, "responses": []}
        topics = [{"topic": t["topic"], "partitions": [self.answer(t["topic"], p) for p in t["partitions"]]}
                  for t in plan.topics]
        session_id, topics = plan.answer(topics)
        return {"error_code": 0, "session_id": session_id, "responses": topics}

    def answer(self, topic: str, part: dict) -> dict:
        key = (topic, part["partition"])
        return {"partition_index": part["partition"], "error_code": self.refusing.get(key, 0),
                "high_watermark": self.high_watermarks.get(key, 0), "log_start_offset": 0, "records": b"",
                "diverging_epoch": {"epoch": -1, "end_offset": -1}}

    def close(self) -> None:
        pass


def sent(request: dict) -> list[tuple[str, int, int]]:
    return [(t["topic"], p["partition"], p["fetch_offset"]) for t in request["topics"] for p in t["partitions"]]


def forgotten(request: dict) -> list[tuple[str, int]]:
    return [(t["topic"], i) for t in request["forgotten_topics_data"] for i in t["partitions"]]


@pytest.fixture
def follower(tmp_path):
    logs = LogManager(str(tmp_path))
    logs.open()
    progressed = []
    manager = types.SimpleNamespace(node_id=2, follower_progressed=lambda replica, hw: progressed.append(
        (replica.topic, replica.index, hw)))
    fetcher = FollowerFetcher(manager, BrokerInfo(1, "127.0.0.1", 1))
    leader = fetcher._connection = Leader()
    replicas = {}
    for topic in ("a", "b"):
        logs.create_topic(topic, 2, {"kafkalite.durability": "interval"})
        for index in range(2):
            replica = types.SimpleNamespace(topic=topic, index=index, log=logs.partition(topic, index),
                                            leader_epoch=0, log_end=object())
            replicas[(topic, index)] = replica
            fetcher.partitions[(topic, index)] = replica
    yield types.SimpleNamespace(fetcher=fetcher, leader=leader, replicas=replicas, progressed=progressed)
    logs.close()


async def test_after_the_first_full_fetch_only_changed_partitions_are_sent(follower):
    fetcher, leader = follower.fetcher, follower.leader
    await fetcher.fetch_once()
    first = leader.requests[-1]
    assert (first["session_id"], first["session_epoch"]) == (0, 0) and len(sent(first)) == 4
    session = fetcher.session.id
    assert session != 0

    await fetcher.fetch_once()
    idle = leader.requests[-1]
    assert (idle["session_id"], idle["session_epoch"]) == (session, 1) and sent(idle) == []

    # One partition's log moves (as after an append): it alone is sent, at its new position.
    follower.replicas[("a", 1)].log.append_as_follower(bytearray(build_batch([(None, b"v")])))
    leader.high_watermarks[("a", 1)] = 1
    await fetcher.fetch_once()
    moved = leader.requests[-1]
    assert moved["session_epoch"] == 2 and sent(moved) == [("a", 1, 1)]
    assert ("a", 1, 1) in follower.progressed  # the leader answered the moved high watermark

    # A partition no longer followed is forgotten.
    fetcher.remove("b", 0)
    await fetcher.fetch_once()
    assert forgotten(leader.requests[-1]) == [("b", 0)] and sent(leader.requests[-1]) == []


async def test_a_broken_connection_or_a_lost_session_starts_a_new_full_session(follower):
    fetcher, leader = follower.fetcher, follower.leader
    await fetcher.fetch_once()
    session = fetcher.session.id
    leader.fail_next = True
    with pytest.raises(ConnectionError):
        await fetcher.fetch_once()
    await fetcher.fetch_once()
    # Full again, naming the old session so that the leader drops it.
    again = leader.requests[-1]
    assert (again["session_id"], again["session_epoch"]) == (session, 0) and len(sent(again)) == 4
    assert len(leader.cache) == 1 and fetcher.session.id != session

    leader.cache = FetchSessionCache(ManualClock().now_ms)  # the leader restarted: it knows no session
    await fetcher.fetch_once()
    assert fetcher.session.epoch == 0  # FETCH_SESSION_ID_NOT_FOUND: the next fetch is full
    await fetcher.fetch_once()
    assert leader.requests[-1]["session_epoch"] == 0 and len(sent(leader.requests[-1])) == 4


async def test_a_refused_partition_is_left_out_until_new_metadata_for_it(follower):
    fetcher, leader = follower.fetcher, follower.leader
    fetcher._task = asyncio.get_running_loop().create_future()  # no loop of its own: the test drives fetch_once
    leader.refusing[("b", 1)] = ErrorCode.NOT_LEADER_OR_FOLLOWER
    await fetcher.fetch_once()
    await fetcher.fetch_once()
    assert forgotten(leader.requests[-1]) == [("b", 1)]  # not asked again, so not answered at once again
    await fetcher.fetch_once()
    assert all(("b", 1) not in [(t, i) for t, i, _ in sent(r)] for r in leader.requests[1:])
    # The metadata says again that this leader leads it: back in the fetches.
    del leader.refusing[("b", 1)]
    fetcher.add(follower.replicas[("b", 1)])
    await fetcher.fetch_once()
    assert sent(leader.requests[-1]) == [("b", 1, 0)]
