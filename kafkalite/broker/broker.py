"""The broker's state between requests: the logs, the groups, fsync group commit and fetch waiters.

Handlers reach everything through `ctx.broker`. Appends and reads run on the event loop; fsync, start-up
recovery and the periodic housekeeping (retention, compaction, checkpoint) run in worker threads. While
housekeeping works on a partition, writers to it wait at its Turnstile; readers go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import queue
import threading
import time
import uuid
from typing import Awaitable, Callable

from kafkalite.broker.groups import GroupService, LocalOffsetsLog, group_settings
from kafkalite.clock import LoopClock
from kafkalite.config import BrokerConfig, DynamicSettings
from kafkalite.group import OFFSETS_TOPIC  # handlers still import it from here
from kafkalite.log.config import LogConfig
from kafkalite.log.errors import StorageError
from kafkalite.log.manager import LogManager, OpenSummary
from kafkalite.log.partition import PartitionLog

log = logging.getLogger("kafkalite.broker")

_PRODUCER_ID_BLOCK = 1000


class FsyncThreads:
    """Worker threads for the fsyncs that acks=all waits for. Handing work over is one queue put and one
    call_soon_threadsafe back, several times cheaper than asyncio.to_thread's executor round trip, which
    shows in every acks=all produce's latency. A few threads, so partitions on other files fsync in parallel."""

    def __init__(self, count: int = 4):
        self._count = count
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self, fn: Callable[[], object]) -> asyncio.Future:
        """Call fn() in one of the threads; the future gets its result or exception."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self.stop()
            self._loop = loop
            self._threads = [threading.Thread(target=self._work, args=(loop,), name=f"fsync-{i}", daemon=True)
                             for i in range(self._count)]
            for thread in self._threads:
                thread.start()
        future = loop.create_future()
        self._queue.put((future, fn))
        return future

    def stop(self) -> None:
        """Let the threads finish what they hold and exit."""
        for _ in self._threads:
            self._queue.put(None)
        self._threads = []
        self._loop = None

    def _work(self, loop: asyncio.AbstractEventLoop) -> None:
        while (item := self._queue.get()) is not None:
            future, fn = item
            try:
                result = fn()
            except BaseException as e:  # handed to the waiter, which re-raises it
                loop.call_soon_threadsafe(_settle, future, None, e)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)


def _settle(future: asyncio.Future, result, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class GroupCommit:
    """Shares fsyncs between concurrent waiters of one partition: while one fsync runs, later
    appends wait for the next one, which then covers all of them."""

    __slots__ = ("log", "_running", "_in_thread")

    def __init__(self, partition_log: PartitionLog,
                 in_thread: Callable[[Callable[[], object]], Awaitable] = asyncio.to_thread):
        self.log = partition_log
        self._running: asyncio.Future | None = None
        self._in_thread = in_thread

    async def durable(self, offset: int) -> None:
        """Return once every offset below `offset` is fsynced (or the log no longer reaches it)."""
        while self.log.flushed_offset < min(offset, self.log.log_end_offset):
            running = self._running
            if running is None or running.done():
                # A finished fsync may have started before our append: start another one.
                running = self._running = asyncio.ensure_future(self._in_thread(self.log.flush))
                running.add_done_callback(_retrieve_exception)
            await asyncio.shield(running)


class Turnstile:
    """One partition's writers in arrival order around housekeeping, which works on the partition in a worker
    thread (PartitionLog.housekeep) and must be the only one changing it meanwhile. Writers that arrive while
    it runs wait, then pass one at a time in the order they came: an idempotent producer's batches must land
    in the order it sent them. An idle turnstile costs a writer one check (busy())."""

    __slots__ = ("_last",)

    def __init__(self):
        self._last: asyncio.Future | None = None  # done once everyone queued so far has passed

    def busy(self) -> bool:
        return self._last is not None and not self._last.done()

    async def pass_through(self) -> None:
        """Wait for everyone ahead. The caller must then make its change before its next await: the next in
        line runs only after that."""
        prev, mine = self._join()
        await self._wait_for(prev, mine)
        _set_done(mine)

    @contextlib.asynccontextmanager
    async def hold(self):
        """Wait for everyone ahead, then keep everyone behind waiting until the block ends."""
        prev, mine = self._join()
        await self._wait_for(prev, mine)
        try:
            yield
        finally:
            _set_done(mine)

    def _join(self) -> tuple[asyncio.Future | None, asyncio.Future]:
        prev, self._last = self._last, asyncio.get_running_loop().create_future()
        return prev, self._last

    @staticmethod
    async def _wait_for(prev: asyncio.Future | None, mine: asyncio.Future) -> None:
        """Wait until `prev` is done; if cancelled meanwhile, `mine` completes when `prev` does."""
        if prev is None or prev.done():
            return
        try:
            await asyncio.shield(prev)
        except asyncio.CancelledError:
            # Our place in line passes on only when those ahead are done, not now.
            prev.add_done_callback(lambda _: _set_done(mine))
            raise


def _set_done(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


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
        self._turnstiles: dict[PartitionLog, Turnstile] = {}
        self.fsync_threads = FsyncThreads()
        self._housekeeping_work: asyncio.Future | None = None  # the worker thread, which cannot be cancelled
        self._housekept: PartitionLog | None = None  # the partition it works on
        self._data_waiters: dict[tuple[str, int], asyncio.Future] = {}
        self._next_producer_id = 0
        self._producer_id_limit = 0
        self._tasks: list[asyncio.Task] = []
        self.groups = GroupService(group_settings(config), LocalOffsetsLog(self.logs, self.append_records), LoopClock())

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
        await self.groups.load_all()
        self.started_ms = self.now_ms()
        interval = self.config["log.retention.check.interval.ms"] / 1000
        self._tasks.append(asyncio.create_task(self._every(interval, self._housekeeping)))
        # flush.ms / flush.messages: checked every second whatever the durability policy, as in Kafka.
        self._tasks.append(asyncio.create_task(self._every(1.0, self._flush_due)))
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

    async def _housekeeping(self) -> None:
        """Retention, compaction and a checkpoint, one partition at a time in a worker thread. Meanwhile the
        event loop serves everything else; writers to that partition wait at its turnstile."""
        now_ms = self.now_ms()
        self._turnstiles = {p: t for p, t in self._turnstiles.items() if not p.closed or t.busy()}
        for plog in self.logs.housekeeping_logs():
            async with self.turnstile(plog).hold():
                if plog.closed or plog.failed:  # deleted or failed while we waited
                    continue
                self._housekept = plog
                work = self._housekeeping_work = asyncio.ensure_future(asyncio.to_thread(plog.housekeep, now_ms))
                try:
                    await asyncio.shield(work)
                except asyncio.CancelledError:
                    await asyncio.wait([work])  # the thread still owns the log: let it finish first
                    raise
                except StorageError as e:
                    log.error("housekeeping of %s failed: %s", plog.directory, e)
                finally:
                    self._housekeeping_work = self._housekept = None
                    plog.close_retired()  # on the loop, so no read holds a removed segment

    def turnstile(self, plog: PartitionLog) -> Turnstile:
        turnstile = self._turnstiles.get(plog)
        if turnstile is None:
            turnstile = self._turnstiles[plog] = Turnstile()
        return turnstile

    async def wait_writable(self, plog: PartitionLog) -> bool:
        """Before changing a log: wait while housekeeping works on it, keeping writers in arrival order. The
        caller must change the log before its next await. True if it waited: the caller then looks the
        partition up again, as its topic may have been deleted meanwhile. Without housekeeping this returns
        at once."""
        turnstile = self._turnstiles.get(plog)
        if turnstile is None or not turnstile.busy():
            return False
        await turnstile.pass_through()
        return True

    async def wait_housekeeping_done(self, logs: list[PartitionLog]) -> None:
        """Before closing logs (DeleteTopics): wait until housekeeping works on none of them."""
        while self._housekeeping_work is not None and self._housekept in logs:
            await asyncio.wait([self._housekeeping_work])

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
            gc = GroupCommit(self.logs.partition(topic, partition), self.fsync_threads.run)
            self._group_commits[key] = gc
        return gc

    async def wait_durable(self, topic: str, partition: int, next_offset: int, acks: int) -> None:
        """Apply the durability policy to an acknowledged append."""
        if acks == -1 and self.logs.partition(topic, partition).config.acks_all_waits_for_fsync:
            await self.group_commit(topic, partition).durable(next_offset)

    async def append_records(self, topic: str, partition: int, batch: bytes | bytearray) -> int:
        """Append one batch that the broker built itself (group offsets) and wait until it is durable."""
        plog = self.logs.partition(topic, partition)
        if await self.wait_writable(plog):
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
