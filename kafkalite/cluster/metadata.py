"""Cluster metadata: the image every handler reads, fed by the store, and topic changes written to it.

The store holds the truth. This broker reads everything at one revision, then follows the watch from the next
one; after each change it keeps its local logs in step (a topic with a replica here gets its partition logs, a
deleted one loses them) and publishes the new image to its listeners (the replica manager first). Topic changes
from any broker's admin requests are transactions on the store, answered once this broker's own image shows them,
so a client that created a topic finds it at the broker it asked.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from typing import Callable

from kafkalite.cluster import decisions
from kafkalite.cluster.records import (
    ClusterState, Keys, TopicRecord, encode_partition, encode_topic,
)
from kafkalite.cluster.store import Compare, Delete, MetadataStore, Put
from kafkalite.log.config import LogConfig
from kafkalite.log.errors import InvalidPartitions, InvalidReplicationFactor, TopicExists, UnknownTopic
from kafkalite.log.manager import MAX_PARTITIONS_PER_REQUEST, LogManager, validate_topic_name
from kafkalite.metadata.image import BrokerInfo, MetadataImage, PartitionInfo, TopicImage
from kafkalite.protocol.errors import ErrorCode

PREFERRED, UNCLEAN = 0, 1  # ElectLeaders election types

log = logging.getLogger("kafkalite.metadata")


class ClusterMetadataStore:
    def __init__(self, store: MetadataStore, keys: Keys, logs: LogManager, broker: BrokerInfo,
                 internal_topics: frozenset[str] = frozenset(), *, default_replication_factor: Callable[[], int],
                 auto_create: Callable[[], int] = lambda: 0, apply_timeout_s: float = 30.0):
        self.store = store
        self.keys = keys
        self.logs = logs
        self.broker = broker
        self.internal_topics = internal_topics
        self.default_replication_factor = default_replication_factor
        self.auto_create = auto_create
        self.apply_timeout_s = apply_timeout_s
        self.state = ClusterState(keys)
        self.image = MetadataImage()
        self.listeners: list[Callable[[MetadataImage], None]] = []
        self.state_listeners: list[Callable[[ClusterState], None]] = []  # the controller
        self._changed = asyncio.Condition()
        self._watch: asyncio.Task | None = None
        self._removing: set[asyncio.Task] = set()

    @property
    def node_id(self) -> int:
        return self.broker.node_id

    async def start(self) -> None:
        """Read everything at one revision and publish it; then follow the store from the next revision."""
        kvs, revision = await self.store.get_prefix(self.keys.root)
        self.state.load(kvs, revision)
        self._publish()
        self._watch = asyncio.create_task(self._follow(revision + 1), name="metadata-watch")

    def restart_watch(self) -> None:
        """Follow the store again from the last revision seen (the rest of its transaction may not have been, and
        what was is skipped): after a network cut a watch stream can stay silent long after the network is back
        (TCP retransmission backs off), while the broker needs to see the changes up to its new registration
        before it may lead again."""
        if self._watch is not None:
            self._watch.cancel()
        self._watch = asyncio.create_task(self._follow(self.state.revision), name="metadata-watch")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        if self._removing:
            await asyncio.gather(*self._removing, return_exceptions=True)

    async def _follow(self, start_revision: int) -> None:
        async for event in self.store.watch_prefix(self.keys.root, start_revision):
            if self.state.apply(event):
                self._publish()

    def _publish(self) -> None:
        image = self.state.image(self.internal_topics)
        self._sync_local_logs(image)
        self.image = image
        for listener in self.listeners:
            listener(image)
        for listener in self.state_listeners:
            listener(self.state)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _until(self, condition: Callable[[], bool], what: str) -> None:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(condition), self.apply_timeout_s)
            except asyncio.TimeoutError:
                raise TimeoutError(f"{what} was written but this broker has not seen it yet") from None

    def _sync_local_logs(self, image: MetadataImage) -> None:
        """Local partition logs for every topic with a replica on this broker; none for the others."""
        mine = {name for name, t in image.topics.items() if any(self.node_id in p.replicas for p in t.partitions)}
        for name in self.logs.topics():
            topic = image.topics.get(name)
            if name not in mine or (topic is not None and self.logs.topic(name).id != topic.topic_id):
                doomed = self.logs.delete_topic(name, remove_files=False)
                task = asyncio.get_running_loop().create_task(asyncio.to_thread(self.logs.remove_deleted, doomed))
                self._removing.add(task)
                task.add_done_callback(self._removing.discard)
                log.info("removed the local replicas of topic %s", name)
        for name in mine:
            topic = image.topics[name]
            if name not in self.logs.topics():
                self.logs.create_topic(name, len(topic.partitions), dict(topic.configs), topic_id=topic.topic_id)
                continue
            info = self.logs.topic(name)
            if info.partitions < len(topic.partitions):
                self.logs.add_partitions(name, len(topic.partitions))
            if info.configs != dict(topic.configs):
                self.logs.alter_configs(name, dict(topic.configs))

    # ------------------------------------------------------------------ topic changes

    async def create_topic(self, name: str, partitions: int, configs: dict[str, str],
                           replication_factor: int = -1, assignments: list[tuple[int, ...]] | None = None
                           ) -> TopicImage:
        validate_topic_name(name)
        LogConfig.from_configs(configs, self.logs.defaults)  # InvalidConfig before anything is written
        if partitions > MAX_PARTITIONS_PER_REQUEST:
            raise InvalidPartitions(f"{partitions} partitions is more than {MAX_PARTITIONS_PER_REQUEST} at once")
        if replication_factor == -1:
            replication_factor = self.default_replication_factor()
        if assignments is None:
            racks = {b.node_id: b.rack for b in self.image.brokers.values()}
            try:
                assignments = decisions.place_replicas(racks, partitions, replication_factor,
                                                       start=random.randrange(max(1, len(racks))))
            except ValueError as e:
                raise InvalidReplicationFactor(str(e)) from None
        record = TopicRecord(name, uuid.uuid4(), len(assignments), len(assignments[0]), dict(configs))
        ops = [Put(self.keys.topic(name), encode_topic(record))]
        ops += [Put(self.keys.partition(record.topic_id, i),
                    encode_partition(PartitionInfo(tuple(r), r[0], 0, tuple(r))))
                for i, r in enumerate(assignments)]
        result = await self.store.txn([Compare(self.keys.topic(name), "create", "==", 0)], ops)
        if not result.succeeded:
            raise TopicExists(f"topic {name!r} already exists")
        await self._until(lambda: self.state.revision >= result.revision and name in self.image.topics,
                          f"topic {name}")
        return self.image.topics[name]

    async def ensure_topic(self, name: str) -> bool:
        if name in self.image.topics:
            return True
        partitions = self.auto_create()
        if partitions < 1 or name in self.internal_topics:
            return False
        try:
            await self.create_topic(name, partitions, {})
            log.info("auto-created topic %s with %d partition(s)", name, partitions)
        except TopicExists:
            pass  # another broker's client got there first
        return True

    async def delete_topic(self, name: str) -> list[str]:
        """Delete the topic everywhere; each broker removes its own replicas' files when it sees the change, so
        there is nothing left for the caller to remove."""
        topic = self.image.topics.get(name)
        if topic is None:
            raise UnknownTopic(f"unknown topic {name!r}")
        result = await self.store.txn([Compare(self.keys.topic(name), "create", ">", 0)], [
            Delete(self.keys.topic(name)), Delete(f"{self.keys.partitions}{topic.topic_id.hex}/", prefix=True)])
        if not result.succeeded:
            raise UnknownTopic(f"unknown topic {name!r}")
        await self._until(lambda: self.state.revision >= result.revision, f"the deletion of topic {name}")
        return []

    async def create_partitions(self, name: str, total: int) -> TopicImage:
        topic = self.state.topics.get(name)
        if topic is None:
            raise UnknownTopic(f"unknown topic {name!r}")
        if total <= topic.partitions:
            raise InvalidPartitions(f"topic {name!r} has {topic.partitions} partitions; {total} is not more")
        racks = {b.node_id: b.rack for b in self.image.brokers.values()}
        try:
            placed = decisions.place_replicas(racks, total - topic.partitions, topic.replication_factor,
                                              start=random.randrange(max(1, len(racks))),
                                              first_partition=topic.partitions)
        except ValueError as e:
            raise InvalidReplicationFactor(str(e)) from None
        grown = TopicRecord(name, topic.topic_id, total, topic.replication_factor, topic.configs)
        ops = [Put(self.keys.topic(name), encode_topic(grown))]
        ops += [Put(self.keys.partition(topic.topic_id, topic.partitions + i),
                    encode_partition(PartitionInfo(r, r[0], 0, r))) for i, r in enumerate(placed)]
        kv = await self.store.get(self.keys.topic(name))
        result = await self.store.txn([Compare(self.keys.topic(name), "mod", "==", kv.mod_revision)], ops)
        if not result.succeeded:
            raise InvalidPartitions(f"topic {name!r} changed meanwhile; try again")
        await self._until(lambda: self.state.revision >= result.revision, f"the partitions of topic {name}")
        return self.image.topics[name]

    async def alter_configs(self, name: str, configs: dict[str, str | None], incremental: bool = False) -> LogConfig:
        topic = self.state.topics.get(name)
        if topic is None:
            raise UnknownTopic(f"unknown topic {name!r}")
        merged = dict(topic.configs) if incremental else {}
        for key, value in configs.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = str(value)
        config = LogConfig.from_configs(merged, self.logs.defaults)
        kv = await self.store.get(self.keys.topic(name))
        changed = TopicRecord(name, topic.topic_id, topic.partitions, topic.replication_factor, merged)
        result = await self.store.txn([Compare(self.keys.topic(name), "mod", "==", kv.mod_revision)],
                                      [Put(self.keys.topic(name), encode_topic(changed))])
        if not result.succeeded:
            raise InvalidPartitions(f"topic {name!r} changed meanwhile; try again")
        await self._until(lambda: self.state.revision >= result.revision, f"the configs of topic {name}")
        return config

    # ------------------------------------------------------------------ leadership and reassignment

    async def _change_partition(self, topic: str, index: int, change) -> int:
        """Apply `change(record) -> record | error code` to a partition by compare-and-swap; returns an error
        code (NONE once this broker's image shows the change)."""
        record = self.state.topics.get(topic)
        found = self.state.partition(topic, index)
        if record is None or found is None:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        old, mod_revision = found
        new = change(old)
        if isinstance(new, int):
            return new
        key = self.keys.partition(record.topic_id, index)
        result = await self.store.txn([Compare(key, "mod", "==", mod_revision)], [Put(key, encode_partition(new))])
        if not result.succeeded:
            return ErrorCode.REASSIGNMENT_IN_PROGRESS  # changed meanwhile: the caller may retry
        await self._until(lambda: self.state.revision >= result.revision, f"the change of {topic}-{index}")
        return ErrorCode.NONE

    async def reassign(self, topic: str, index: int, replicas: list[int] | None) -> int:
        """AlterPartitionReassignments for one partition: move it to `replicas`, or cancel (None)."""
        live = set(self.image.brokers)

        def change(p: PartitionInfo):
            if replicas is None:
                if not (p.adding or p.removing):
                    return ErrorCode.NO_REASSIGNMENT_IN_PROGRESS
                return decisions.cancel_reassignment(p)
            if not replicas or len(set(replicas)) != len(replicas) or not set(replicas) <= live:
                return ErrorCode.INVALID_REPLICA_ASSIGNMENT
            return decisions.start_reassignment(p, tuple(replicas))

        return await self._change_partition(topic, index, change)

    def reassignments(self) -> list[tuple[str, int, PartitionInfo]]:
        return [(name, i, p) for name, t in sorted(self.image.topics.items()) for i, p in enumerate(t.partitions)
                if p.adding or p.removing]

    async def elect_leader(self, topic: str, index: int, election_type: int) -> int:
        """ElectLeaders for one partition: 0 the preferred replica, 1 any live replica when none in sync is."""
        live = set(self.image.brokers)

        def change(p: PartitionInfo):
            if election_type == PREFERRED:
                if p.leader == p.replicas[0]:
                    return ErrorCode.ELECTION_NOT_NEEDED
                new = decisions.preferred_leader(p, live)
                return ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE if new == p else new
            if p.leader in live:
                return ErrorCode.ELECTION_NOT_NEEDED
            new = decisions.elect_leader(p, live, unclean=True)
            return ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE if new.leader == -1 else new

        return await self._change_partition(topic, index, change)

    async def set_topic_defaults(self, defaults: LogConfig) -> None:
        def apply():
            self.logs.defaults = defaults
            for name in self.logs.topics():
                self.logs.alter_configs(name, self.logs.topic(name).configs)
        await asyncio.to_thread(apply)

    def topic_config(self, name: str) -> LogConfig:
        if name in self.logs.topics():
            return self.logs.topic(name).config
        return LogConfig.from_configs(dict(self.image.topics[name].configs), self.logs.defaults)

    @property
    def topic_defaults(self) -> LogConfig:
        return self.logs.defaults

    def set_endpoint(self, host: str, port: int) -> None:
        self.broker = BrokerInfo(self.broker.node_id, host, port, self.broker.rack)

