"""The cluster's records in the store, and the metadata image they make (cluster/records.py)."""

import asyncio
import uuid

from kafkalite.clock import ManualClock
from kafkalite.cluster.memory import MemoryStore
from kafkalite.cluster.records import (
    ClusterState, Keys, TopicRecord, encode_broker, encode_partition, encode_topic,
)
from kafkalite.cluster.store import Put
from kafkalite.metadata.image import BrokerInfo, PartitionInfo

KEYS = Keys("c1")
TID = uuid.uuid4()
P0 = PartitionInfo((1, 2), 1, 3, (1, 2), 7)
P1 = PartitionInfo((2, 1), 2, 0, (2,), 1)


async def test_the_image_follows_the_store_through_a_load_and_then_watch_events():
    store = MemoryStore(ManualClock(0))
    await store.txn([], [Put(KEYS.cluster_id, b"cid"), Put(KEYS.broker(1), encode_broker(BrokerInfo(1, "h", 1)))])
    state = ClusterState(KEYS)
    state.load(*await store.get_prefix(KEYS.root))
    events = store.watch_prefix(KEYS.root, state.revision + 1)
    topic = TopicRecord("t", TID, 2, 2, {"retention.ms": "1000"})
    await store.txn([], [Put(KEYS.topic("t"), encode_topic(topic)), Put(KEYS.partition(TID, 0), encode_partition(P0))])
    for _ in range(2):
        state.apply(await events.__anext__())
    assert state.image().topic("t") is None, "a topic showed before all its partitions were known"
    await store.txn([], [Put(KEYS.partition(TID, 1), encode_partition(P1))])
    state.apply(await events.__anext__())
    image = state.image()
    assert image.cluster_id == "cid" and image.brokers[1] == BrokerInfo(1, "h", 1)
    assert image.topic("t").partitions == (P0, P1) and image.topic("t").configs == {"retention.ms": "1000"}
    assert image.topic_name(TID) == "t"
    record, mod_revision = state.partition("t", 1)
    assert record == P1 and mod_revision == (await store.get(KEYS.partition(TID, 1))).mod_revision
    await events.aclose()


async def test_a_restarted_watch_resumes_after_the_last_revision_seen():
    from kafkalite.cluster.metadata import ClusterMetadataStore
    from kafkalite.log.manager import LogManager

    store = MemoryStore(ManualClock(0))
    await store.txn([], [Put(KEYS.broker(1), encode_broker(BrokerInfo(1, "h", 1)))])
    metadata = ClusterMetadataStore(store, KEYS, LogManager("/never-opened"), BrokerInfo(1, "h", 1),
                                    default_replication_factor=lambda: 1)
    await metadata.start()
    seen = metadata.state.revision
    metadata.restart_watch()
    changed = await store.txn([], [Put(KEYS.broker(2), encode_broker(BrokerInfo(2, "h", 2)))])
    for _ in range(100):
        if metadata.state.revision >= changed.revision:
            break
        await asyncio.sleep(0)
    assert metadata.state.revision == changed.revision > seen and 2 in metadata.image.brokers
    await metadata.stop()
