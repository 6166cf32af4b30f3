"""What cluster mode keeps in the store: the key layout under `kafkalite/NAME/` and the JSON of each value, and
the metadata image those keys make (CLUSTER.md, "etcd keys").

| key                          | value                                                          |
|------------------------------|----------------------------------------------------------------|
| cluster_id                   | the id, written once                                           |
| brokers/<id>                 | host, port, rack, state; on the broker's lease; epoch = create_revision |
| controller                   | the controller's id; on its lease; controller epoch = create_revision |
| topics/<name>                | topic id, partitions, replication factor, configs             |
| partitions/<topic id>/<p>    | replicas, leader, leader_epoch, isr, partition_epoch           |
| producer_ids                 | the start of the next free block of producer ids               |

Pure: building and updating an image from key-values and watch events does no I/O.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace

from kafkalite.cluster.store import Event, KeyValue
from kafkalite.metadata.image import (
    NO_LEADER, BrokerInfo, MetadataDelta, MetadataImage, PartitionInfo, TopicImage,
)

BROKER_RUNNING, BROKER_SHUTTING_DOWN = "running", "shutting_down"


class Keys:
    def __init__(self, cluster_name: str):
        self.root = f"kafkalite/{cluster_name}/"
        self.cluster_id = self.root + "cluster_id"
        self.controller = self.root + "controller"
        self.producer_ids = self.root + "producer_ids"
        self.brokers = self.root + "brokers/"
        self.topics = self.root + "topics/"
        self.partitions = self.root + "partitions/"

    def broker(self, node_id: int) -> str:
        return f"{self.brokers}{node_id}"

    def topic(self, name: str) -> str:
        return self.topics + name

    def partition(self, topic_id: uuid.UUID, index: int) -> str:
        return f"{self.partitions}{topic_id.hex}/{index}"


@dataclass(frozen=True, slots=True)
class BrokerRecord:
    info: BrokerInfo
    state: str
    epoch: int  # the create_revision of its key


@dataclass(frozen=True, slots=True)
class TopicRecord:
    name: str
    topic_id: uuid.UUID
    partitions: int
    replication_factor: int
    configs: dict[str, str]


def encode_broker(info: BrokerInfo, state: str = BROKER_RUNNING) -> bytes:
    return json.dumps({"host": info.host, "port": info.port, "rack": info.rack, "state": state}).encode()


def decode_broker(node_id: int, value: bytes, epoch: int) -> BrokerRecord:
    d = json.loads(value)
    return BrokerRecord(BrokerInfo(node_id, d["host"], d["port"], d.get("rack")), d.get("state", BROKER_RUNNING),
                        epoch)


def encode_topic(topic: TopicRecord) -> bytes:
    return json.dumps({"topic_id": str(topic.topic_id), "partitions": topic.partitions,
                       "replication_factor": topic.replication_factor, "configs": topic.configs},
                      sort_keys=True).encode()


def decode_topic(name: str, value: bytes) -> TopicRecord:
    d = json.loads(value)
    return TopicRecord(name, uuid.UUID(d["topic_id"]), d["partitions"], d["replication_factor"], dict(d["configs"]))


def encode_partition(p: PartitionInfo) -> bytes:
    return json.dumps({"replicas": list(p.replicas), "leader": p.leader, "leader_epoch": p.leader_epoch,
                       "isr": list(p.isr), "partition_epoch": p.partition_epoch, "adding": list(p.adding),
                       "removing": list(p.removing)}).encode()


def decode_partition(value: bytes) -> PartitionInfo:
    d = json.loads(value)
    return PartitionInfo(tuple(d["replicas"]), d["leader"], d["leader_epoch"], tuple(d["isr"]), d["partition_epoch"],
                         tuple(d.get("adding", ())), tuple(d.get("removing", ())))


class ClusterState:
    """Everything under the cluster's root as records, kept current from key-values and watch events, and the
    metadata image it makes. Partitions are kept by topic id, so a record that arrives before its topic's
    (or after the topic is gone) waits rather than being lost."""

    def __init__(self, keys: Keys):
        self.keys = keys
        self.cluster_id = ""
        self.controller: tuple[int, int] | None = None  # (id, controller epoch)
        self.brokers: dict[int, BrokerRecord] = {}
        self.topics: dict[str, TopicRecord] = {}
        self.partitions: dict[tuple[uuid.UUID, int], tuple[PartitionInfo, int]] = {}  # -> (record, mod_revision)
        self.revision = 0
        # The keys applied so far at `revision` while its changes may still be coming (one transaction's changes
        # share a revision); None once all of them are known (after a load).
        self._applied_at_revision: set[str] | None = None

    def load(self, kvs: list[KeyValue], revision: int) -> None:
        for kv in kvs:
            self._put(kv.key, kv.value, kv.create_revision, kv.mod_revision)
        self.revision, self._applied_at_revision = revision, None

    def apply(self, event: Event) -> bool:
        """Apply a watched change; False for one already applied (skipped), so a watch may resume at the revision
        it was in the middle of."""
        if event.revision < self.revision or (event.revision == self.revision and (
                self._applied_at_revision is None or event.key in self._applied_at_revision)):
            return False
        if event.revision > self.revision:
            self.revision, self._applied_at_revision = event.revision, set()
        self._applied_at_revision.add(event.key)
        if event.kind == "put":
            self._put(event.key, event.value, event.create_revision, event.revision)
        else:
            self._delete(event.key)
        return True

    def _put(self, key: str, value: bytes, create_revision: int, mod_revision: int) -> None:
        k = self.keys
        if key == k.cluster_id:
            self.cluster_id = value.decode()
        elif key == k.controller:
            self.controller = (int(value), create_revision)
        elif key.startswith(k.brokers):
            node = int(key[len(k.brokers):])
            self.brokers[node] = decode_broker(node, value, create_revision)
        elif key.startswith(k.topics):
            name = key[len(k.topics):]
            self.topics[name] = decode_topic(name, value)
        elif key.startswith(k.partitions):
            topic_hex, _, index = key[len(k.partitions):].partition("/")
            self.partitions[(uuid.UUID(hex=topic_hex), int(index))] = (decode_partition(value), mod_revision)

    def _delete(self, key: str) -> None:
        k = self.keys
        if key == k.controller:
            self.controller = None
        elif key.startswith(k.brokers):
            self.brokers.pop(int(key[len(k.brokers):]), None)
        elif key.startswith(k.topics):
            self.topics.pop(key[len(k.topics):], None)
        elif key.startswith(k.partitions):
            topic_hex, _, index = key[len(k.partitions):].partition("/")
            self.partitions.pop((uuid.UUID(hex=topic_hex), int(index)), None)

    def partition(self, topic: str, index: int) -> tuple[PartitionInfo, int] | None:
        record = self.topics.get(topic)
        return None if record is None else self.partitions.get((record.topic_id, index))

    def image(self, internal_topics: frozenset[str] = frozenset()) -> MetadataImage:
        """The metadata image: live brokers, the controller, and every topic whose partitions are all known."""
        topics = {}
        for name, record in self.topics.items():
            parts = [self.partitions.get((record.topic_id, i)) for i in range(record.partitions)]
            if any(p is None for p in parts):
                continue  # created in one transaction: only seen half-way while catching up; wait for the rest
            # A leadership from a broker's earlier life is nobody's until the controller elects again.
            led = tuple(replace(p, leader=NO_LEADER) if self.leader_restarted(p, mod) else p for p, mod in parts)
            topics[name] = TopicImage(name, record.topic_id, led, dict(record.configs),
                                      internal=name in internal_topics)
        return MetadataImage().apply(MetadataDelta(
            topics=topics, brokers={n: b.info for n, b in self.brokers.items()},
            controller_id=self.controller[0] if self.controller else NO_LEADER, cluster_id=self.cluster_id,
        ))

    def leader_restarted(self, partition: PartitionInfo, mod_revision: int) -> bool:
        """The partition's leader registered after its record was last written (a broker epoch is a revision):
        the record was decided in an earlier life of that broker."""
        broker = self.brokers.get(partition.leader)
        return broker is not None and broker.epoch > mod_revision

    def live_brokers(self) -> set[int]:
        return set(self.brokers)

    def shutting_down(self) -> frozenset[int]:
        return frozenset(n for n, b in self.brokers.items() if b.state == BROKER_SHUTTING_DOWN)

