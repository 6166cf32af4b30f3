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



class StallingStore:
    """The store, but the first watch goes silent after the first change of the next multi-key transaction (a
    stream cut in the middle of one); later watches are the store's own."""

    def __init__(self, store):
        self.store = store
        self.watches = 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    async def watch_prefix(self, prefix, start_revision):
        self.watches += 1
        first = self.watches == 1
        async for event in self.store.watch_prefix(prefix, start_revision):
            yield event
            if first and event.key.startswith(KEYS.topics):
                await asyncio.Event().wait()  # silent for good; restart_watch cancels it


async def test_a_watch_restarted_in_the_middle_of_a_transaction_gets_the_rest_of_it():
    """One transaction's changes share a revision (the controller moves many leaders in one). A broker whose
    watch stalled after some of them must resume at that revision, not after it: one back from SIGSTOP missed
    the rest of a batch of leader moves and followed leaders that had moved, for good. What it had applied
    already is skipped, so nothing is applied twice."""
    from kafkalite.cluster.metadata import ClusterMetadataStore
    from kafkalite.log.manager import LogManager

    store = StallingStore(MemoryStore(ManualClock(0)))
    await store.txn([], [Put(KEYS.broker(1), encode_broker(BrokerInfo(1, "h", 1)))])
    metadata = ClusterMetadataStore(store, KEYS, LogManager("/never-opened"), BrokerInfo(9, "h", 9),
                                    default_replication_factor=lambda: 1)
    await metadata.start()
    batch = await store.txn([], [Put(KEYS.topic("t"), encode_topic(TopicRecord("t", TID, 2, 2, {}))),
                                 Put(KEYS.partition(TID, 0), encode_partition(P0)),
                                 Put(KEYS.partition(TID, 1), encode_partition(P1))])
    for _ in range(100):
        if metadata.state.revision >= batch.revision:
            break
        await asyncio.sleep(0)
    assert metadata.image.topic("t") is None, "the stream was to stall after the topic's record"
    applied = []
    metadata.state_listeners.append(lambda state: applied.append(state.revision))
    metadata.restart_watch()
    for _ in range(100):
        if metadata.image.topic("t") is not None:
            break
        await asyncio.sleep(0)
    assert metadata.image.topic("t").partitions == (P0, P1)
    assert applied == [batch.revision, batch.revision], "the topic's record was applied again"
    await metadata.stop()

