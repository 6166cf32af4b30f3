"""The composition root: builds the broker's services, wires them, starts and stops them in order.

    logs (LogManager)            the local replicas' storage, by (topic, partition)
    metadata (LocalMetadataStore) topics, partitions, leaders: the image every handler reads
    replicas (ReplicaManager)    the replicas this broker leads, their high watermarks and waiters
    housekeeping                 retention, compaction, checkpoints in a worker thread
    groups (GroupService)        consumer groups over __consumer_offsets
    producer_ids                 idempotent producers' ids

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
from kafkalite.broker.groups import GroupService
from kafkalite.broker.producer_ids import ProducerIdBlocks
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

log = logging.getLogger("kafkalite.app")

CLUSTER_FILE = "cluster.json"


class App:
    """A standalone broker's services. `await start()` opens the data dir and loads everything; `await stop()`
    closes it cleanly."""

    def __init__(self, config: BrokerConfig, clock: Clock | None = None):
        self.config = config
        self.node_id = config.node_id
        self.clock = clock or LoopClock()
        self.dynamic_settings = DynamicSettings(config)
        self.logs = LogManager(config.data_dir, topic_defaults(config))
        self.fsync_threads = FsyncThreads()
        self.replicas = ReplicaManager(config.node_id, self.logs, None, self.fsync_threads, self.clock.now_ms)
        self.housekeeping = Housekeeping(lambda: [r.log for r in self.replicas.leaders() if not r.log.failed],
                                         self.clock.now_ms)
        self.replicas.housekeeping = self.housekeeping
        self.metadata = LocalMetadataStore(
            self.logs, BrokerInfo(config.node_id, config.host, config.port), frozenset([OFFSETS_TOPIC]),
            auto_create=lambda: config["num.partitions"] if config["auto.create.topics.enable"] else 0,
        )
        self.metadata.listeners.append(self.replicas.apply_image)
        self.producer_ids = ProducerIdBlocks(config.data_dir)
        self.groups = GroupService(self)
        self.services = Services(config, self.dynamic_settings, self.metadata, self.replicas, self.groups,
                                 self.producer_ids)
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
        self.cluster_id = await asyncio.to_thread(load_cluster_id, self.config.data_dir)
        summary = await asyncio.to_thread(self.logs.open)
        self.metadata.load(self.cluster_id)
        if OFFSETS_TOPIC not in self.metadata.image.topics:
            await self.metadata.create_topic(
                OFFSETS_TOPIC, self.config["offsets.topic.num.partitions"],
                {"cleanup.policy": "compact", "segment.bytes": str(100 * 1024 * 1024)},
            )
        await self.groups.load()
        self.started_ms = self.now_ms()
        interval = self.config["log.retention.check.interval.ms"] / 1000
        self._tasks.append(asyncio.create_task(self._every(interval, self.housekeeping.run_round)))
        # flush.ms / flush.messages: checked every second whatever the durability policy, as in Kafka.
        self._tasks.append(asyncio.create_task(self._every(1.0, self.replicas.flush_due)))
        return dataclasses.replace(summary, seconds=time.monotonic() - started)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        # A cancelled housekeeping task returns only after its worker thread is done with the log.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.groups.stop()
        await asyncio.to_thread(self.logs.close)
        self.fsync_threads.stop()

    async def _every(self, seconds: float, job) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                log.exception("background job %s failed", job.__name__)

    # ------------------------------------------------------------------ the group service's port (for now)

    async def append_records(self, topic: str, partition: int, batch: bytes | bytearray) -> int:
        return await self.replicas.append_internal(topic, partition, batch)


def load_cluster_id(data_dir: str, fs: FileSystem | None = None) -> str:
    """This data dir's cluster id, made (and stored durably) on first start."""
    fs = fs or FileSystem()
    path = os.path.join(data_dir, CLUSTER_FILE)
    if fs.exists(path):
        return json.loads(fs.read_file(path))["cluster_id"]
    cluster_id = uuid.uuid4().hex[:22]
    fs.write_file_atomic(path, json.dumps({"cluster_id": cluster_id}).encode())
    return cluster_id
