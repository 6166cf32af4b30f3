"""ListOffsets from a leader whose high watermark still lags the start of its epoch (KIP-207): a consumer gets a
retriable error, never an end offset below what the previous leader gave; followers and earliest are unaffected."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from kafkalite.broker.handlers import list_offsets
from kafkalite.log.manager import LogManager
from kafkalite.metadata.image import BrokerInfo, MetadataDelta, MetadataImage, PartitionInfo, TopicImage
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.record_batch import build_batch
from kafkalite.replication.durability import FsyncThreads
from kafkalite.replication.housekeeping import Housekeeping
from kafkalite.replication.replica_manager import ReplicaManager


def image(leader_epoch: int) -> MetadataImage:
    topic = TopicImage("t", uuid.UUID(int=1), (PartitionInfo((1, 2, 3), 1, leader_epoch, (1, 2, 3)),),
                       {"kafkalite.durability": "interval"})
    brokers = {b: BrokerInfo(b, "127.0.0.1", 9000 + b) for b in (1, 2, 3)}
    return MetadataImage().apply(MetadataDelta(topics={"t": topic}, brokers=brokers, controller_id=1))


async def list_offset(manager, timestamp: int, version: int = 7, replica_id: int = -1) -> tuple[int, int]:
    request = {"replica_id": replica_id, "isolation_level": 0,
               "topics": [{"name": "t", "partitions": [{"partition_index": 0, "timestamp": timestamp}]}]}
    response = await list_offsets.handle(SimpleNamespace(replicas=manager, api_version=version), request)
    part = response["topics"][0]["partitions"][0]
    return part["error_code"], part["offset"]


async def test_a_new_leader_answers_latest_only_once_its_high_watermark_reaches_its_epoch_start(tmp_path):
    logs = LogManager(str(tmp_path))
    logs.open()
    logs.create_topic("t", 1, {"kafkalite.durability": "interval"}, topic_id=uuid.UUID(int=1))
    manager = ReplicaManager(1, logs, Housekeeping(lambda: [], lambda: 0), FsyncThreads(1), lambda: 0)
    manager.apply_image(image(1))
    await manager.append("t", 0, memoryview(bytearray(build_batch([(None, b"a"), (None, b"b")]))), -1)
    manager.apply_image(image(2))  # leader again at a new epoch, its high watermark (0) behind its log end (2)
    assert await list_offset(manager, list_offsets.LATEST) == (ErrorCode.OFFSET_NOT_AVAILABLE, -1)
    assert await list_offset(manager, list_offsets.LATEST, version=4) == (ErrorCode.LEADER_NOT_AVAILABLE, -1)
    assert await list_offset(manager, 0) == (ErrorCode.OFFSET_NOT_AVAILABLE, -1)  # nothing below the watermark
    assert await list_offset(manager, list_offsets.EARLIEST) == (ErrorCode.NONE, 0)
    assert await list_offset(manager, list_offsets.LATEST, replica_id=2) == (ErrorCode.NONE, 0)  # not a consumer
    replica = manager.leader("t", 0)
    manager.follower_fetched(replica, 2, 2)
    manager.follower_fetched(replica, 3, 2)
    assert replica.state.high_watermark == 2
    assert await list_offset(manager, list_offsets.LATEST) == (ErrorCode.NONE, 2)
    assert await list_offset(manager, 0) == (ErrorCode.NONE, 0)
    logs.close()
