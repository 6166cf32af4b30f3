"""The cluster as this broker sees it: an immutable image of brokers, topics, partitions and their leaders.

Handlers read leadership from here and nowhere else. An image never changes; a `MetadataDelta` applied to it
gives the next one. Standalone, the local store (metadata/local.py) makes the deltas; in cluster mode they will
come from etcd. Pure: no I/O, no asyncio.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping

NO_LEADER = -1


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    node_id: int
    host: str
    port: int
    rack: str | None = None


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """One partition's assignment and leadership. `partition_epoch` counts every change of this record. During a
    reassignment `replicas` holds old and new replicas together, `adding` the new ones not yet in sync and
    `removing` the old ones to drop once they are (as Kafka's partition records)."""

    replicas: tuple[int, ...]
    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    partition_epoch: int = 0
    adding: tuple[int, ...] = ()
    removing: tuple[int, ...] = ()

    @property
    def target(self) -> tuple[int, ...]:
        """The replicas once a reassignment in progress is done (the replicas, when none is)."""
        return tuple(r for r in self.replicas if r not in self.removing)

    def offline_replicas(self, live: Mapping[int, BrokerInfo]) -> list[int]:
        return [r for r in self.replicas if r not in live]


@dataclass(frozen=True, slots=True)
class TopicImage:
    name: str
    topic_id: uuid.UUID
    partitions: tuple[PartitionInfo, ...]
    configs: Mapping[str, str] = field(default_factory=dict)  # the topic's overrides, Kafka names
    internal: bool = False

    @property
    def replication_factor(self) -> int:
        return len(self.partitions[0].replicas) if self.partitions else 0


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class MetadataDelta:
    """Changes to an image: topics added or replaced whole, topics removed, brokers, controller."""

    topics: Mapping[str, TopicImage] = field(default_factory=dict)
    removed_topics: frozenset[str] = frozenset()
    brokers: Mapping[int, BrokerInfo] = field(default_factory=dict)
    removed_brokers: frozenset[int] = frozenset()
    controller_id: int | None = None
    cluster_id: str | None = None


@dataclass(frozen=True, slots=True)
class MetadataImage:
    cluster_id: str = ""
    controller_id: int = NO_LEADER
    brokers: Mapping[int, BrokerInfo] = field(default_factory=lambda: _frozen({}))
    topics: Mapping[str, TopicImage] = field(default_factory=lambda: _frozen({}))
    topics_by_id: Mapping[uuid.UUID, str] = field(default_factory=lambda: _frozen({}))

    def topic(self, name: str) -> TopicImage | None:
        return self.topics.get(name)

    def partition(self, topic: str, index: int) -> PartitionInfo | None:
        image = self.topics.get(topic)
        if image is None or not 0 <= index < len(image.partitions):
            return None
        return image.partitions[index]

    def topic_name(self, topic_id: uuid.UUID) -> str | None:
        return self.topics_by_id.get(topic_id)

    def leader_of(self, topic: str, index: int) -> BrokerInfo | None:
        """The broker leading the partition, or None (no such partition, or no live leader)."""
        info = self.partition(topic, index)
        return None if info is None else self.brokers.get(info.leader)

    def apply(self, delta: MetadataDelta) -> "MetadataImage":
        topics = dict(self.topics)
        for name in delta.removed_topics:
            topics.pop(name, None)
        topics.update(delta.topics)
        brokers = dict(self.brokers)
        for node in delta.removed_brokers:
            brokers.pop(node, None)
        brokers.update(delta.brokers)
        return replace(
            self,
            cluster_id=self.cluster_id if delta.cluster_id is None else delta.cluster_id,
            controller_id=self.controller_id if delta.controller_id is None else delta.controller_id,
            brokers=_frozen(brokers),
            topics=_frozen(topics),
            topics_by_id=_frozen({t.topic_id: t.name for t in topics.values()}),
        )


def changed_partitions(old: MetadataImage, new: MetadataImage) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(partitions whose record is new or changed, partitions that are gone) between two images."""
    changed: list[tuple[str, int]] = []
    gone: list[tuple[str, int]] = []
    for name, topic in new.topics.items():
        before = old.topics.get(name)
        same_topic = before is not None and before.topic_id == topic.topic_id
        for index, info in enumerate(topic.partitions):
            if not same_topic or index >= len(before.partitions) or before.partitions[index] != info:
                changed.append((name, index))
        if before is not None and not same_topic:
            gone.extend((name, i) for i in range(len(before.partitions)))
    for name, topic in old.topics.items():
        if name not in new.topics:
            gone.extend((name, i) for i in range(len(topic.partitions)))
    return changed, gone
