"""Standalone metadata: this broker is the whole cluster, its topics are the ones its data dir holds.

The store changes topics through the log store (whose meta.json is the standalone record of them) and
publishes a new MetadataImage after every change, to `listeners` (the replica manager first). Changes run one at
a time; those that write meta.json and create partition directories do it in a worker thread, and the image
(what every handler reads) changes only on the event loop, once they are done. Every partition is
led by this broker at leader epoch 0, its only replica and ISR. Cluster mode will replace this store with one fed
by etcd; handlers see the same image and the same calls either way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Callable

from kafkalite.log.config import LogConfig
from kafkalite.log.manager import LogManager, TopicInfo
from kafkalite.metadata.image import BrokerInfo, MetadataDelta, MetadataImage, PartitionInfo, TopicImage
from kafkalite.protocol.errors import ErrorCode

log = logging.getLogger("kafkalite.metadata")

STANDALONE_LEADER_EPOCH = 0


def topic_defaults(config) -> LogConfig:
    """Topic settings that a topic does not set itself, from the broker's log.* settings."""
    defaults = LogConfig.from_configs(
        {
            "segment.bytes": str(config["log.segment.bytes"]),
            "retention.ms": str(config["log.retention.ms"]),
            "retention.bytes": str(config["log.retention.bytes"]),
            "max.message.bytes": str(config["message.max.bytes"]),
            "flush.messages": str(config["log.flush.interval.messages"]),
            "flush.ms": str(config["log.flush.interval.ms"]),
            "kafkalite.durability": config["kafkalite.durability"],
            "min.insync.replicas": str(config["min.insync.replicas"]),
        }
    )
    # A broker-only setting: not a topic config name, so set on the defaults directly (see LogConfig).
    return dataclasses.replace(defaults, producer_id_expiration_ms=config["producer.id.expiration.ms"])


class LocalMetadataStore:
    def __init__(self, logs: LogManager, broker: BrokerInfo, internal_topics: frozenset[str] = frozenset(),
                 auto_create: Callable[[], int] = lambda: 0):
        self.logs = logs
        self.broker = broker
        self.internal_topics = internal_topics
        self.auto_create = auto_create  # partitions of an auto-created topic; 0: auto-creation is off
        self.image = MetadataImage()
        self.listeners: list[Callable[[MetadataImage], None]] = []
        self._changing = asyncio.Lock()

    @property
    def node_id(self) -> int:
        return self.broker.node_id

    def load(self, cluster_id: str) -> None:
        """The first image, once the logs are open."""
        delta = MetadataDelta(
            topics={name: self._topic_image(self.logs.topic(name)) for name in self.logs.topics()},
            brokers={self.broker.node_id: self.broker}, controller_id=self.broker.node_id, cluster_id=cluster_id,
        )
        self._publish(delta)

    def set_endpoint(self, host: str, port: int) -> None:
        """The address clients are told, once the listener is bound (an ephemeral port is known only then)."""
        self.broker = BrokerInfo(self.broker.node_id, host, port, self.broker.rack)
        self._publish(MetadataDelta(brokers={self.broker.node_id: self.broker}))

    # ------------------------------------------------------------------ changes (each publishes an image)

    async def create_topic(self, name: str, partitions: int, configs: dict[str, str], replication_factor: int = 1,
                           assignments: list[tuple[int, ...]] | None = None) -> TopicImage:
        """Assignments, where given, must name this broker alone (the handler checks them against the image)."""
        async with self._changing:
            await asyncio.to_thread(self.logs.create_topic, name, partitions, configs)
            return self._republish(name)

    async def ensure_topic(self, name: str) -> bool:
        """Create a topic a client asked for by name when auto-creation is on; True if it exists."""
        if name in self.image.topics:
            return True
        partitions = self.auto_create()
        if partitions < 1 or name in self.internal_topics:
            return False
        async with self._changing:
            if name not in self.image.topics:
                await asyncio.to_thread(self.logs.create_topic, name, partitions, {})
                log.info("auto-created topic %s with %d partition(s)", name, partitions)
                self._republish(name)
        return True

    async def delete_topic(self, name: str) -> list[str]:
        """Forget the topic; returns its renamed directories for `logs.remove_deleted` (slow: run it in a
        thread). meta.json is written in a worker thread; the logs are closed on the event loop once the image no
        longer has the topic, so no read is using them meanwhile."""
        async with self._changing:
            info = await asyncio.to_thread(self.logs.forget_topic, name)
            self._publish(MetadataDelta(removed_topics=frozenset([name])))
            return self.logs.retire_topic_logs(info)

    async def create_partitions(self, name: str, total: int) -> TopicImage:
        async with self._changing:
            await asyncio.to_thread(self.logs.add_partitions, name, total)
            return self._republish(name)

    async def alter_configs(self, name: str, configs: dict[str, str | None], incremental: bool = False) -> LogConfig:
        async with self._changing:
            config = await asyncio.to_thread(self.logs.alter_configs, name, configs, incremental)
            self._republish(name)
            return config

    async def set_topic_defaults(self, defaults: LogConfig) -> None:
        """New broker defaults (a dynamic broker setting changed): every topic without its own override follows."""
        async with self._changing:
            def apply():
                self.logs.defaults = defaults
                for name in self.logs.topics():  # re-applying the overrides recomputes each topic's config
                    self.logs.alter_configs(name, self.logs.topic(name).configs)
            await asyncio.to_thread(apply)

    # ------------------------------------------------------------------ leadership and reassignment (one broker)

    async def reassign(self, topic: str, index: int, replicas: list[int] | None) -> int:
        if self.image.partition(topic, index) is None:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        if replicas is None:
            return ErrorCode.NO_REASSIGNMENT_IN_PROGRESS
        if list(replicas) != [self.broker.node_id]:
            return ErrorCode.INVALID_REPLICA_ASSIGNMENT
        return ErrorCode.NONE  # already there

    def reassignments(self) -> list:
        return []

    async def elect_leader(self, topic: str, index: int, election_type: int) -> int:
        if self.image.partition(topic, index) is None:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return ErrorCode.ELECTION_NOT_NEEDED  # this broker is every partition's preferred and only replica

    # ------------------------------------------------------------------ reads the image lacks

    def topic_config(self, name: str) -> LogConfig:
        """A topic's effective config (defaults + overrides)."""
        return self.logs.topic(name).config

    @property
    def topic_defaults(self) -> LogConfig:
        return self.logs.defaults

    # ------------------------------------------------------------------ internals

    def _topic_image(self, info: TopicInfo) -> TopicImage:
        node = self.broker.node_id
        partition = PartitionInfo(replicas=(node,), leader=node, leader_epoch=STANDALONE_LEADER_EPOCH, isr=(node,))
        return TopicImage(info.name, info.id, (partition,) * info.partitions, dict(info.configs),
                          internal=info.name in self.internal_topics)

    def _republish(self, name: str) -> TopicImage:
        topic = self._topic_image(self.logs.topic(name))
        self._publish(MetadataDelta(topics={name: topic}))
        return topic

    def _publish(self, delta: MetadataDelta) -> None:
        self.image = self.image.apply(delta)
        for listener in self.listeners:
            listener(self.image)
