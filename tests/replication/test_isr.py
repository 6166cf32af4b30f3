"""A leader's ISR changes (replica manager + partition state), with time and the store's writer faked."""

from __future__ import annotations

import asyncio
import uuid

from kafkalite.log.manager import LogManager
from kafkalite.metadata.image import BrokerInfo, MetadataDelta, MetadataImage, PartitionInfo, TopicImage
from kafkalite.protocol.record_batch import build_batch
from kafkalite.replication.durability import FsyncThreads
from kafkalite.replication.housekeeping import Housekeeping
from kafkalite.replication.replica_manager import ReplicaManager

LAG_MS = 1_000


class Writer:
    def __init__(self):
        self.proposed: list[tuple[int, ...]] = []

    async def change_isr(self, topic, index, leader_epoch, isr):
        self.proposed.append(isr)
        return True


def image(isr) -> MetadataImage:
    topic = TopicImage("t", uuid.UUID(int=1), (PartitionInfo((1, 2, 3), 1, 2, tuple(isr)),),
                       {"kafkalite.durability": "interval"})
    brokers = {b: BrokerInfo(b, "127.0.0.1", 9000 + b) for b in (1, 2, 3)}
    return MetadataImage().apply(MetadataDelta(topics={"t": topic}, brokers=brokers, controller_id=1))


async def leader_of_t(tmp_path, isr):
    logs = LogManager(str(tmp_path))
    logs.open()
    logs.create_topic("t", 1, {"kafkalite.durability": "interval"}, topic_id=uuid.UUID(int=1))
    now = [0]
    writer = Writer()
    manager = ReplicaManager(1, logs, Housekeeping(lambda: [], lambda: 0), FsyncThreads(1), lambda: now[0],
                             isr_writer=writer, replica_lag_max_ms=LAG_MS)
    manager.apply_image(image(isr))
    return manager, writer, now, logs


async def settle(writer):
    for _ in range(10):
        await asyncio.sleep(0)


async def test_the_high_watermark_waits_for_every_isr_member(tmp_path):
    manager, _, now, logs = await leader_of_t(tmp_path, (1, 2, 3))
    replica, _ = await manager.append("t", 0, memoryview(bytearray(build_batch([(None, b"a"), (None, b"b")]))), -1)
    assert replica.state.high_watermark == 0
    manager.follower_fetched(replica, 2, 2)
    assert replica.state.high_watermark == 0, "moved before follower 3 had the records"
    manager.follower_fetched(replica, 3, 1)
    assert replica.state.high_watermark == 1
    manager.follower_fetched(replica, 3, 2)
    assert replica.state.high_watermark == 2
    logs.close()


async def test_only_the_follower_that_is_fetching_rejoins_the_isr(tmp_path):
    manager, writer, now, logs = await leader_of_t(tmp_path, (1, 2, 3))
    replica = manager.leader("t", 0)
    manager.follower_fetched(replica, 3, 0)  # caught up, and then broker 3 dies
    manager.apply_image(image((1, 2)))  # the controller took it out of the ISR
    manager.follower_fetched(replica, 2, 0)
    await settle(writer)
    assert writer.proposed == [], "a broker that no longer fetches was put back in the ISR"
    manager.follower_fetched(replica, 3, 0)  # it is back, and caught up
    await settle(writer)
    assert writer.proposed == [(1, 2, 3)]
    logs.close()


async def test_a_follower_behind_for_longer_than_the_lag_limit_leaves_the_isr(tmp_path):
    manager, writer, now, logs = await leader_of_t(tmp_path, (1, 2, 3))
    replica, _ = await manager.append("t", 0, memoryview(bytearray(build_batch([(None, b"a")]))), -1)
    now[0] = LAG_MS
    manager.follower_fetched(replica, 2, 1)  # 2 keeps up; 3 never fetches
    manager.check_isr()
    await settle(writer)
    assert writer.proposed == []
    now[0] = LAG_MS + 1
    manager.check_isr()
    await settle(writer)
    assert writer.proposed == [(1, 2)]
    logs.close()


async def test_a_fenced_leader_refuses_writes_and_acknowledges_nothing_it_wrote_before(tmp_path):
    """CLUSTER.md: past its lease deadline a broker leads nothing, and an acks=all write whose high watermark was
    reached while it was fenced is not acknowledged."""
    import pytest

    from kafkalite.protocol.errors import ErrorCode
    from kafkalite.replication.replica_manager import NotServed

    manager, _, now, logs = await leader_of_t(tmp_path, (1, 2))
    fenced = [False]
    manager.fenced = lambda: fenced[0]
    replica, result = await manager.append("t", 0, memoryview(bytearray(build_batch([(None, b"a")]))), -1)
    committed = manager.replicated(replica, result.last_offset + 1)
    fenced[0] = True
    manager.follower_fetched(replica, 2, 1)  # the follower has it: the high watermark passes the batch
    assert await committed
    refused = manager.acknowledgement_error(replica)
    assert refused is not None and refused.code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    with pytest.raises(NotServed) as e:
        await manager.append("t", 0, memoryview(bytearray(build_batch([(None, b"b")]))), -1)
    assert e.value.code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    logs.close()


async def test_acks_all_below_min_insync_replicas_is_refused_before_anything_is_written(tmp_path):
    from kafkalite.protocol.errors import ErrorCode
    from kafkalite.replication.replica_manager import NotServed

    manager, _, now, logs = await leader_of_t(tmp_path, (1,))
    logs.alter_configs("t", {"kafkalite.durability": "interval", "min.insync.replicas": "2"})
    try:
        await manager.append("t", 0, memoryview(bytearray(build_batch([(None, b"a")]))), -1)
        raise AssertionError("acks=all was accepted with one in-sync replica of two required")
    except NotServed as e:
        assert e.code == ErrorCode.NOT_ENOUGH_REPLICAS
    assert logs.partition("t", 0).log_end_offset == 0
    _, result = await manager.append("t", 0, memoryview(bytearray(build_batch([(None, b"a")]))), 1)  # acks=1 goes
    assert result.base_offset == 0
    logs.close()


async def test_a_follower_cuts_an_epoch_the_leader_never_had_even_below_the_leaders_end(tmp_path):
    """The follower led briefly at epoch 2 and wrote records the new leader (epoch 3) never got; the leader's
    answer says epoch 0 ends at 2, which is not below the follower's log end. The follower must still cut its own
    epoch-2 records (from where its epoch 0 ends), or it would be told the same thing on every fetch."""
    import types

    from kafkalite.metadata.image import BrokerInfo
    from kafkalite.replication.fetcher import FollowerFetcher

    logs = LogManager(str(tmp_path))
    logs.open()
    logs.create_topic("t", 1, {"kafkalite.durability": "interval"})
    plog = logs.partition("t", 0)
    plog.append(bytearray(build_batch([(None, b"a")])), leader_epoch=0)
    plog.assign_leader_epoch(2)
    plog.append(bytearray(build_batch([(None, b"b")])), leader_epoch=2)  # offset 1, at epoch 2
    assert plog.leader_epochs == ((0, 0), (2, 1)) and plog.log_end_offset == 2
    manager = types.SimpleNamespace(node_id=1, follower_progressed=lambda replica, hw: None)
    replica = types.SimpleNamespace(topic="t", index=0, log=plog)
    fetcher = FollowerFetcher(manager, BrokerInfo(9, "127.0.0.1", 1))
    answer = {"error_code": 0, "high_watermark": 1, "records": b"", "diverging_epoch": {"epoch": 0, "end_offset": 2}}
    fetcher._take(replica, answer)
    assert plog.log_end_offset == 1 and plog.latest_epoch == 0, "kept records of an epoch the leader never had"
    logs.close()
