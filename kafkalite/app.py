"""The composition root: builds the broker's services, wires them, starts and stops them in order.

    logs (LogManager)            the local replicas' storage, by (topic, partition)
    metadata (LocalMetadataStore) topics, partitions, leaders: the image every handler reads
    replicas (ReplicaManager)    the replicas this broker leads, their high watermarks and waiters
    housekeeping                 retention, compaction, checkpoints in a worker thread
    groups (GroupService)        consumer groups over __consumer_offsets
    producer_ids                 idempotent producers' ids
    transactions                 the transaction coordinator over __transaction_state

Nothing else builds services; handlers reach them through the RequestContext (broker/context.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import time
import uuid

from kafkalite.broker.context import Services
from kafkalite.broker.fetch_sessions import FetchSessionCache
from kafkalite.broker.groups import GroupService, LocalOffsetsLog, group_settings
from kafkalite.broker.producer_ids import ProducerIdBlocks
from kafkalite.broker.transactions import LocalMarkers, RemoteVerification, RoutedMarkers, TransactionService
from kafkalite.clock import Clock, LoopClock
from kafkalite.config import BrokerConfig, DynamicSettings
from kafkalite.group import OFFSETS_TOPIC
from kafkalite.log.fs import FileSystem
from kafkalite.log.manager import LogManager, OpenSummary
from kafkalite.metadata.image import BrokerInfo
from kafkalite.metadata.local import LocalMetadataStore, topic_defaults
from kafkalite.replication.durability import FsyncThreads
from kafkalite.replication.housekeeping import Housekeeping
from kafkalite.replication.replica_manager import ReplicaManager
from kafkalite.txn import TRANSACTION_STATE_TOPIC, TxnConfig

log = logging.getLogger("kafkalite.app")

CLUSTER_FILE = "cluster.json"


class App:
    """A broker's services, standalone or as a cluster member. `await start()` opens the data dir and loads
    everything local; `await listening(host, port)`, once the Kafka port is bound and before it serves, joins
    the cluster (cluster mode); `await stop()` closes it all cleanly."""

    def __init__(self, config: BrokerConfig, clock: Clock | None = None):
        self.config = config
        self.node_id = config.node_id
        self.clock = clock or LoopClock()
        self.dynamic_settings = DynamicSettings(config)
        self.logs = LogManager(config.data_dir, topic_defaults(config))
        self.fsync_threads = FsyncThreads()
        self.member = None  # cluster mode: this broker's membership (kafkalite/cluster/member.py)
        broker = BrokerInfo(config.node_id, config.host, config.port, config["broker.rack"] or None)
        auto_create = lambda: config["num.partitions"] if config["auto.create.topics.enable"] else 0  # noqa: E731
        if config.cluster:
            self.metadata, self.member = _cluster_member(config, self.logs, broker, self.clock, auto_create)
            fenced, isr_writer = self.member.fenced, self.member
        else:
            self.metadata = LocalMetadataStore(self.logs, broker, frozenset([OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC]),
                                               auto_create=auto_create)
            fenced, isr_writer = (lambda: False), None
        self.replicas = ReplicaManager(config.node_id, self.logs, None, self.fsync_threads, self.clock.now_ms,
                                       fenced=fenced, isr_writer=isr_writer,
                                       replica_lag_max_ms=config["replica.lag.time.max.ms"])
        self.housekeeping = Housekeeping(lambda: [r.log for r in self.replicas.local_replicas() if not r.log.failed],
                                         self.clock.now_ms)
        self.replicas.housekeeping = self.housekeeping
        self.metadata.listeners.append(self.replicas.apply_image)
        self.producer_ids = ProducerIdBlocks(config.data_dir) if self.member is None else self.member
        self.groups = GroupService(group_settings(config), LocalOffsetsLog(self.logs, self.replicas.append_internal),
                                   self.clock)
        # Transaction log appends hold to the topic's min.insync.replicas (transaction.state.log.min.isr), as Kafka's.
        txn_log = LocalOffsetsLog(self.logs, lambda topic, index, batch: self.replicas.append_internal(
            topic, index, batch, acks=-1), TRANSACTION_STATE_TOPIC)
        self.markers = LocalMarkers(self.replicas, self.groups)
        if self.member is not None:  # markers to partitions other brokers lead go there as WriteTxnMarkers
            self.markers = RoutedMarkers(self.metadata, self.markers, config.node_id)
        self.transactions = TransactionService(
            TxnConfig.from_mapping(config), txn_log, self.markers, self.producer_ids.allocate, self.clock,
            config["transaction.abort.timed.out.transaction.cleanup.interval.ms"], fenced=fenced,
            expiry_interval_ms=config["transaction.remove.expired.transaction.cleanup.interval.ms"],
            remote=RemoteVerification(self.metadata, config.node_id) if self.member is not None else None)
        self._coordinating: set[int] = set()  # cluster mode: the __consumer_offsets partitions whose groups we serve
        self._txn_epochs: dict[int, int] = {}  # cluster mode: __transaction_state partitions we lead -> leader epoch
        self._loading: set[asyncio.Task] = set()
        if self.member is not None:
            self.metadata.listeners.append(self._follow_offsets_leadership)
            self.metadata.listeners.append(self._follow_transaction_leadership)
            self.groups.fenced = self.member.fenced
        self.services = Services(
            config, self.dynamic_settings, self.metadata, self.replicas, self.groups, self.producer_ids,
            FetchSessionCache(self.clock.now_ms, config["max.incremental.fetch.session.cache.slots"]),
            self.transactions)
        self.cluster_id = ""
        self.started_ms = 0
        self._tasks: list[asyncio.Task] = []

    def now_ms(self) -> int:
        return self.clock.now_ms()

    async def start(self) -> OpenSummary:
        started = time.monotonic()
        os.makedirs(self.config.data_dir, exist_ok=True)
        self.dynamic_settings.load()
        self.logs.defaults = topic_defaults(self.config)  # settings changed at run time before the last stop apply
        summary = await asyncio.to_thread(self.logs.open)
        if self.member is None:
            self.cluster_id = await asyncio.to_thread(load_cluster_id, self.config.data_dir)
            self.metadata.load(self.cluster_id)
            if OFFSETS_TOPIC not in self.metadata.image.topics:
                await self.metadata.create_topic(
                    OFFSETS_TOPIC, self.config["offsets.topic.num.partitions"],
                    {"cleanup.policy": "compact", "segment.bytes": str(100 * 1024 * 1024)},
                )
            await self.groups.load_all()
            if TRANSACTION_STATE_TOPIC not in self.metadata.image.topics:
                await self.metadata.create_topic(
                    TRANSACTION_STATE_TOPIC, self.config["transaction.state.log.num.partitions"],
                    {"cleanup.policy": "compact", "segment.bytes": str(100 * 1024 * 1024)},
                )
            await self.transactions.load_all()
        else:
            self.transactions.start()
            lag_ms = self.config["replica.lag.time.max.ms"]
            self._tasks.append(asyncio.create_task(self._every(lag_ms / 2000, self._check_isr)))
        self.started_ms = self.now_ms()
        interval = self.config["log.retention.check.interval.ms"] / 1000
        self._tasks.append(asyncio.create_task(self._every(interval, self.housekeeping.run_round)))
        # flush.ms / flush.messages: checked every second whatever the durability policy, as in Kafka.
        self._tasks.append(asyncio.create_task(self._every(1.0, self.replicas.flush_due)))
        return dataclasses.replace(summary, seconds=time.monotonic() - started)

    async def listening(self, host: str, port: int) -> None:
        """The Kafka port is bound (not yet serving): tell the metadata our address; in cluster mode register
        with it and load the cluster's metadata, so the first client already finds it."""
        self.metadata.set_endpoint(host, port)
        if self.member is not None:
            self.member.session.broker = self.metadata.broker
            local = await asyncio.to_thread(read_cluster_id, self.config.data_dir)
            self.cluster_id = await self.member.join(local)
            if local is None:
                await asyncio.to_thread(store_cluster_id, self.config.data_dir, self.cluster_id)

    def _follow_offsets_leadership(self, image) -> None:
        """Cluster mode: coordinate the groups of exactly the __consumer_offsets partitions this broker leads."""
        topic = image.topic(OFFSETS_TOPIC)
        partitions = topic.partitions if topic is not None else ()
        for index, info in enumerate(partitions):
            if info.leader == self.node_id and index not in self._coordinating:
                self._coordinating.add(index)
                task = asyncio.get_running_loop().create_task(self.groups.load_partition(index))
                self._loading.add(task)
                task.add_done_callback(self._loading.discard)
            elif info.leader != self.node_id and index in self._coordinating:
                self._coordinating.discard(index)
                self.groups.unload_partition(index)

    def _follow_transaction_leadership(self, image) -> None:
        """Cluster mode: coordinate the transactional ids of exactly the __transaction_state partitions this broker
        leads, at their leader epoch (the coordinator epoch); a new epoch (leadership went and came back) loads the
        partition again, as another coordinator may have written to it meanwhile."""
        topic = image.topic(TRANSACTION_STATE_TOPIC)
        partitions = topic.partitions if topic is not None else ()
        for index in [i for i in self._txn_epochs if i >= len(partitions)]:  # the topic is gone
            del self._txn_epochs[index]
            self.transactions.unload_partition(index)
        if partitions:
            self.transactions.start(len(partitions))
        for index, info in enumerate(partitions):
            led_at = self._txn_epochs.get(index)
            if info.leader == self.node_id and led_at != info.leader_epoch:
                self._txn_epochs[index] = info.leader_epoch
                task = asyncio.get_running_loop().create_task(
                    self.transactions.load_partition(index, info.leader_epoch))
                self._loading.add(task)
                task.add_done_callback(self._loading.discard)
            elif info.leader != self.node_id and led_at is not None:
                del self._txn_epochs[index]
                self.transactions.unload_partition(index)

    async def controlled_shutdown(self) -> None:
        """Before stopping (SIGTERM): in cluster mode, hand leadership to other replicas first."""
        if self.member is not None:
            await self.member.controlled_shutdown(timeout_s=self.config["broker.session.timeout.ms"] / 1000)

    async def _check_isr(self) -> None:
        self.replicas.check_isr()

    async def stop(self) -> None:
        if self._loading:
            await asyncio.gather(*self._loading, return_exceptions=True)
        await self.replicas.stop()
        if self.member is not None:
            await self.member.leave()
        for task in self._tasks:
            task.cancel()
        # A cancelled housekeeping task returns only after its worker thread is done with the log.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.groups.stop()
        await self.transactions.stop()
        if isinstance(self.markers, RoutedMarkers):
            self.markers.close()
        if self.transactions.remote is not None:
            self.transactions.remote.close()
        await asyncio.to_thread(self.logs.close)
        self.fsync_threads.stop()

    async def _every(self, seconds: float, job) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                log.exception("background job %s failed", job.__name__)


def _cluster_member(config: BrokerConfig, logs: LogManager, broker: BrokerInfo, clock: Clock, auto_create):
    """Cluster mode's metadata store and membership, over etcd (imported only here: standalone needs no etcd)."""
    from kafkalite.cluster.etcd import EtcdStore, parse_endpoints
    from kafkalite.cluster.member import ClusterMember
    from kafkalite.cluster.metadata import ClusterMetadataStore
    from kafkalite.cluster.records import Keys

    endpoints, name = parse_endpoints(config.cluster)
    store = EtcdStore(endpoints)
    internal = frozenset([OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC])
    metadata = ClusterMetadataStore(store, Keys(name), logs, broker, internal,
                                    default_replication_factor=lambda: config["default.replication.factor"],
                                    auto_create=auto_create)
    member = ClusterMember(store, name, broker, metadata, clock,
                           session_timeout_ms=config["broker.session.timeout.ms"],
                           unclean_election=lambda: config["unclean.leader.election.enable"],
                           rebalance_interval_s=config["leader.imbalance.check.interval.seconds"],
                           auto_rebalance=config["auto.leader.rebalance.enable"])
    return metadata, member


def read_cluster_id(data_dir: str, fs: FileSystem | None = None) -> str | None:
    fs = fs or FileSystem()
    path = os.path.join(data_dir, CLUSTER_FILE)
    return json.loads(fs.read_file(path))["cluster_id"] if fs.exists(path) else None


def store_cluster_id(data_dir: str, cluster_id: str, fs: FileSystem | None = None) -> None:
    (fs or FileSystem()).write_file_atomic(os.path.join(data_dir, CLUSTER_FILE),
                                          json.dumps({"cluster_id": cluster_id}).encode())


def load_cluster_id(data_dir: str, fs: FileSystem | None = None) -> str:
    """This data dir's cluster id, made (and stored durably) on first start."""
    fs = fs or FileSystem()
    path = os.path.join(data_dir, CLUSTER_FILE)
    if fs.exists(path):
        return json.loads(fs.read_file(path))["cluster_id"]
    cluster_id = uuid.uuid4().hex[:22]
    fs.write_file_atomic(path, json.dumps({"cluster_id": cluster_id}).encode())
    return cluster_id
