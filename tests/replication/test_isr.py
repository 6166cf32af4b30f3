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
