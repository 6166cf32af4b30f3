"""The broker's state between requests: the logs, the groups, fsync group commit and fetch waiters.

Handlers reach everything through `ctx.broker`. fsync and start-up recovery run in worker threads;
appends, reads, and the periodic retention, compaction and checkpoint run on the event loop (the log
allows only flush() off its owning thread).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import time
import uuid

from kafkalite.config import BrokerConfig, DynamicSettings
from kafkalite.log.config import LogConfig
from kafkalite.log.manager import LogManager, OpenSummary
from kafkalite.log.partition import PartitionLog

log = logging.getLogger("kafkalite.broker")

OFFSETS_TOPIC = "__consumer_offsets"
_PRODUCER_ID_BLOCK = 1000


class GroupCommit:
    """Shares fsyncs between concurrent waiters of one partition: while one fsync runs, later
    appends wait for the next one, which then covers all of them."""

    __slots__ = ("log", "_running")

    def __init__(self, partition_log: PartitionLog):
        self.log = partition_log
        self._running: asyncio.Future | None = None

    async def durable(self, offset: int) -> None:
        """Return once every offset below `offset` is fsynced (or the log no longer reaches it)."""
        while self.log.flushed_offset < min(offset, self.log.log_end_offset):
            running = self._running
            if running is None or running.done():
                # A finished fsync may have started before our append: start another one.
                running = self._running = asyncio.ensure_future(asyncio.to_thread(self.log.flush))
                running.add_done_callback(_retrieve_exception)
            await asyncio.shield(running)


def _retrieve_exception(future: asyncio.Future) -> None:
    # Marked as retrieved even when every waiter was cancelled; the waiters re-raise it through shield().
    if not future.cancelled():
        future.exception()


class Broker:
    def __init__(self, config: BrokerConfig):
        self.config = config
        self.node_id = config.node_id
        self.dynamic_settings = DynamicSettings(config)
        self.logs = LogManager(config.data_dir, self.topic_defaults())
        self.cluster_id = ""
        self.started_ms = 0
        self._group_commits: dict[tuple[str, int], GroupCommit] = {}
        self._data_waiters: dict[tuple[str, int], asyncio.Future] = {}
        self._next_producer_id = 0
        self._producer_id_limit = 0
        self._tasks: list[asyncio.Task] = []
        from kafkalite.broker.groups import GroupService  # the group glue imports the broker's types

        self.groups = GroupService(self)

    # ------------------------------------------------------------------ life cycle

    def topic_defaults(self) -> LogConfig:
        """Topic settings that a topic does not set itself, from the broker's log.* settings."""
        c = self.config
        defaults = LogConfig.from_configs(
            {
                "segment.bytes": str(c["log.segment.bytes"]),
                "retention.ms": str(c["log.retention.ms"]),
                "retention.bytes": str(c["log.retention.bytes"]),
                "max.message.bytes": str(c["message.max.bytes"]),
                "flush.messages": str(c["log.flush.interval.messages"]),
                "flush.ms": str(c["log.flush.interval.ms"]),
                "kafkalite.durability": c["kafkalite.durability"],
            }
        )
        # A broker-only setting: not a topic config name, so set on the defaults directly (see LogConfig).
        return dataclasses.replace(defaults, producer_id_expiration_ms=c["producer.id.expiration.ms"])

    async def start(self) -> OpenSummary:
        started = time.monotonic()
        os.makedirs(self.config.data_dir, exist_ok=True)
        self.dynamic_settings.load()
        self.logs.defaults = self.topic_defaults()  # settings changed at run time before the last stop apply
        self.cluster_id = self._load_cluster_id()
        summary = await asyncio.to_thread(self.logs.open)
        if OFFSETS_TOPIC not in self.logs.topics():
            self.logs.create_topic(
                OFFSETS_TOPIC,
                self.config["offsets.topic.num.partitions"],
                {"cleanup.policy": "compact", "segment.bytes": str(100 * 1024 * 1024)},
            )
        await self.groups.load()
        self.started_ms = self.now_ms()
        interval = self.config["log.retention.check.interval.ms"] / 1000
        self._tasks.append(asyncio.create_task(self._every(interval, self._housekeeping)))
        # flush.ms / flush.messages: checked every second whatever the durability policy, as in Kafka.
        self._tasks.append(asyncio.create_task(self._every(1.0, self._flush_due)))
        return dataclasses.replace(summary, seconds=time.monotonic() - started)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.groups.stop()
        await asyncio.to_thread(self.logs.close)

    async def _every(self, seconds: float, job) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                log.exception("background job %s failed", job.__name__)

    async def _housekeeping(self) -> None:
        # On the event loop, not in a thread: retention, compaction and checkpoints change segments and index
        # files that appends touch too, and the log allows only flush() off its owning thread. One partition
        # at a time, serving requests in between, so no request waits for all of them.
        for directory, error in self.logs.housekeeping(self.now_ms()):
            if error is not None:
                log.error("housekeeping of %s failed: %s", directory, error)
            await asyncio.sleep(0)

    async def _flush_due(self) -> None:
        for plog in self.logs.flush_due(self.now_ms()):
            await asyncio.to_thread(plog.flush)

    def _load_cluster_id(self) -> str:
        path = os.path.join(self.config.data_dir, "cluster.json")
        try:
            with open(path) as f:
                return json.load(f)["cluster_id"]
        except FileNotFoundError:
            cluster_id = uuid.uuid4().hex[:22]
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"cluster_id": cluster_id}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            return cluster_id

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    # ------------------------------------------------------------------ topics

    def ensure_topic(self, name: str) -> bool:
        """Create a topic a client asked for by name when auto-creation is on; True if it exists."""
        if name in self.logs.topics():
            return True
        if not self.config["auto.create.topics.enable"] or name == OFFSETS_TOPIC:
            return False
        self.logs.create_topic(name, self.config["num.partitions"], {})
        log.info("auto-created topic %s with %d partition(s)", name, self.config["num.partitions"])
        return True

    def partition_log(self, topic: str, partition: int) -> PartitionLog | None:
        if topic not in self.logs.topics():
            return None
        if not 0 <= partition < self.logs.topic(topic).partitions:
            return None
        return self.logs.partition(topic, partition)

    # ------------------------------------------------------------------ durability

    def group_commit(self, topic: str, partition: int) -> GroupCommit:
        key = (topic, partition)
        gc = self._group_commits.get(key)
        if gc is None or gc.log is not self.logs.partition(topic, partition):
            gc = self._group_commits[key] = GroupCommit(self.logs.partition(topic, partition))
        return gc

    async def wait_durable(self, topic: str, partition: int, next_offset: int, acks: int) -> None:
        """Apply the durability policy to an acknowledged append."""
        if acks == -1 and self.logs.partition(topic, partition).config.acks_all_waits_for_fsync:
            await self.group_commit(topic, partition).durable(next_offset)

    async def append_records(self, topic: str, partition: int, batch: bytes | bytearray) -> int:
        """Append one batch that the broker built itself (group offsets) and wait until it is durable."""
        plog = self.logs.partition(topic, partition)
        result = plog.append(memoryview(bytearray(batch)))
        self.data_appended(topic, partition)
        await self.wait_durable(topic, partition, plog.log_end_offset, -1)
        return result.base_offset

    # ------------------------------------------------------------------ long-poll fetch

    def data_appended(self, topic: str, partition: int) -> None:
        waiter = self._data_waiters.pop((topic, partition), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def data_waiter(self, topic: str, partition: int) -> asyncio.Future:
        """A future completed by the next append to the partition."""
        key = (topic, partition)
        waiter = self._data_waiters.get(key)
        if waiter is None or waiter.done():
            waiter = self._data_waiters[key] = asyncio.get_running_loop().create_future()
        return waiter

    # ------------------------------------------------------------------ producer ids

    def allocate_producer_id(self) -> int:
        """Producer ids never repeat, across restarts too: blocks of them are reserved on disk."""
        if self._next_producer_id >= self._producer_id_limit:
            path = os.path.join(self.config.data_dir, "producer_ids.json")
            try:
                with open(path) as f:
                    start = json.load(f)["next_block"]
            except FileNotFoundError:
                start = 0
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"next_block": start + _PRODUCER_ID_BLOCK}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            self._next_producer_id, self._producer_id_limit = start, start + _PRODUCER_ID_BLOCK
        pid = self._next_producer_id
        self._next_producer_id += 1
        return pid
