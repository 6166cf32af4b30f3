"""The asyncio shell around the pure group coordinator (kafkalite.group).

It turns the coordinator's effects into I/O: parked JoinGroup/SyncGroup requests become futures,
timers become loop.call_later handles, and records are appended to `__consumer_offsets` (and made
durable) before the replies that depend on them are delivered. At start, `load()` replays the topic.

The broker calls `await load()` once the logs are open (before serving) and `await stop()` on shutdown.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from typing import TYPE_CHECKING, Callable

from kafkalite.group import (
    GroupConfig,
    GroupCoordinator,
    JoinRequest,
    JoinResult,
    OffsetCommitRequest,
    SyncRequest,
    SyncResult,
)
from kafkalite.group.coordinator import CommittedOffset, Effects, GroupDescription
from kafkalite.protocol.errors import DecodeError, ErrorCode
from kafkalite.protocol.record_batch import build_batch, iter_batches

if TYPE_CHECKING:
    from kafkalite.broker.broker import Broker

log = logging.getLogger("kafkalite.groups")

OFFSETS_TOPIC = "__consumer_offsets"
_READ_CHUNK = 1 << 20


class PersistError(Exception):
    """Records could not be appended to __consumer_offsets."""


def _group_settings(config) -> object:
    """The coordinator's settings from the broker config: its `groups` mapping, else its Kafka-named settings."""
    for name in ("groups", "settings"):
        value = getattr(config, name, None)
        if value is not None:
            return value
    return None


class GroupService:
    def __init__(self, broker: "Broker"):
        self.broker = broker
        self.config = GroupConfig.from_mapping(_group_settings(broker.config))
        self.coordinator = GroupCoordinator(self.config)
        self.loaded = False  # group APIs answer COORDINATOR_LOAD_IN_PROGRESS until load() is done
        self._timers: dict[tuple, asyncio.TimerHandle] = {}
        # token -> (future, result to give it if the service stops first)
        self._waiters: dict[int, tuple[asyncio.Future, object]] = {}
        self._tokens = itertools.count(1)
        self._append_lock = asyncio.Lock()  # appends go out in the order the coordinator made them
        self._background: set[asyncio.Task] = set()

    def now_ms(self) -> int:
        return self.broker.now_ms()

    # ------------------------------------------------------------ life cycle

    async def load(self) -> None:
        """Rebuild groups and committed offsets from __consumer_offsets; arm their timers."""
        logs = self.broker.logs
        if OFFSETS_TOPIC in logs.topics():
            partitions = logs.topic(OFFSETS_TOPIC).partitions
            if partitions != self.config.offsets_topic_num_partitions:
                # groups were placed by the existing partition count: keep using it
                log.warning("%s has %d partitions, not the configured %d; using %d", OFFSETS_TOPIC,
                            partitions, self.config.offsets_topic_num_partitions, partitions)
                self.config = dataclasses.replace(self.config, offsets_topic_num_partitions=partitions)
                self.coordinator.config = self.config
            records = await asyncio.to_thread(self._read_all, partitions)
        else:
            records = []
        now = self.now_ms()
        self._arm(self.coordinator.load(records, now))
        self._arm(self.coordinator.start(now))
        self.loaded = True
        log.info("loaded %d consumer group(s) from %d record(s)", len(self.coordinator.groups), len(records))

    def _read_all(self, partitions: int) -> list[tuple[bytes | None, bytes | None]]:
        records: list[tuple[bytes | None, bytes | None]] = []
        for index in range(partitions):
            plog = self.broker.logs.partition(OFFSETS_TOPIC, index)
            offset = plog.log_start_offset
            try:
                while True:
                    chunks = plog.read(offset, _READ_CHUNK)
                    start = offset
                    for chunk in chunks:
                        for batch in iter_batches(chunk):
                            if not batch.is_control:
                                records.extend((r.key, r.value) for r in batch.records() if r.offset >= offset)
                            offset = max(offset, batch.next_offset)
                    if offset <= start:
                        break
            except DecodeError:
                log.exception("%s-%d: stopped reading at offset %d", OFFSETS_TOPIC, index, offset)
        return records

    async def stop(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for future, on_stop in self._waiters.values():
            if not future.done():
                future.set_result(on_stop)
        self._waiters.clear()
        self.loaded = False

    # ------------------------------------------------------------ effects

    def _arm(self, fx: Effects) -> None:
        if not fx.timers:
            return
        loop = asyncio.get_running_loop()
        now = self.now_ms()
        for deadline, key in fx.timers:
            old = self._timers.pop(key, None)
            if old is not None:
                old.cancel()
            self._timers[key] = loop.call_later(max(0, deadline - now) / 1000, self._fire, key)

    def _fire(self, key: tuple) -> None:
        self._timers.pop(key, None)
        fx = self.coordinator.timer_fired(key, self.now_ms())
        if fx.records:
            task = asyncio.ensure_future(self._settle(fx))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        else:
            self._arm(fx)
            self._deliver(fx)

    async def _settle(self, fx: Effects, *, raise_on_failure: bool = False) -> None:
        """Arm timers, persist records, then deliver replies."""
        self._arm(fx)
        try:
            if fx.records:
                await self._persist(fx.records)
        except PersistError:
            if raise_on_failure:
                raise
        finally:
            self._deliver(fx)

    def _deliver(self, fx: Effects) -> None:
        for token, result in fx.replies:
            waiter = self._waiters.pop(token, None)
            if waiter is not None and not waiter[0].done():
                waiter[0].set_result(result)

    async def _persist(self, records: list[tuple[int, bytes, bytes | None]]) -> None:
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for partition, key, value in records:
            by_partition.setdefault(partition, []).append((key, value))
        now = self.now_ms()
        async with self._append_lock:
            for partition, rows in by_partition.items():
                batch = build_batch(rows, timestamps=now)
                try:
                    await self.broker.append_records(OFFSETS_TOPIC, partition, batch)
                except Exception as e:  # any storage failure: the caller answers with a retriable error
                    log.exception("appending to %s-%d failed", OFFSETS_TOPIC, partition)
                    raise PersistError(str(e)) from e

    async def _long_poll(self, call: Callable[[int], Effects], on_stop: object) -> object:
        token = next(self._tokens)
        future = asyncio.get_running_loop().create_future()
        self._waiters[token] = (future, on_stop)
        try:
            await self._settle(call(token))
            return await future
        finally:
            self._waiters.pop(token, None)

    # ------------------------------------------------------------ requests

    async def join_group(self, request: JoinRequest) -> JoinResult:
        stopped = JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE, request.member_id)
        return await self._long_poll(lambda token: self.coordinator.join_group(token, self.now_ms(), request), stopped)

    async def sync_group(self, request: SyncRequest) -> SyncResult:
        stopped = SyncResult(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        return await self._long_poll(lambda token: self.coordinator.sync_group(token, self.now_ms(), request), stopped)

    async def heartbeat(self, group_id: str, member_id: str, generation_id: int, group_instance_id: str | None) -> int:
        code, fx = self.coordinator.heartbeat(self.now_ms(), group_id, member_id, generation_id, group_instance_id)
        await self._settle(fx)
        return code

    async def leave_group(self, group_id: str, members: list[tuple[str, str | None]]) -> tuple[int, list[int]]:
        code, codes, fx = self.coordinator.leave_group(self.now_ms(), group_id, members)
        await self._settle(fx)
        return code, codes

    async def offset_commit(self, request: OffsetCommitRequest) -> dict[tuple[str, int], int]:
        """Per-partition errors; accepted offsets are durable in __consumer_offsets before this returns."""
        plan = self.coordinator.offset_commit(self.now_ms(), request)
        try:
            await self._settle(plan.effects, raise_on_failure=True)
        except PersistError:
            return {k: (ErrorCode.COORDINATOR_NOT_AVAILABLE if v == ErrorCode.NONE else v) for k, v in plan.errors.items()}
        self.coordinator.apply_commit(plan, self.now_ms())
        return plan.errors

    def offset_fetch(self, group_id: str, partitions: list[tuple[str, int]] | None) -> list[tuple[str, int, CommittedOffset | None]]:
        return self.coordinator.offset_fetch(group_id, partitions)

    async def offset_delete(self, group_id: str, partitions: list[tuple[str, int]]) -> tuple[int, dict[tuple[str, int], int]]:
        code, results, fx = self.coordinator.offset_delete(self.now_ms(), group_id, partitions)
        try:
            await self._settle(fx, raise_on_failure=True)
        except PersistError:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, {}
        return code, results

    def describe_group(self, group_id: str) -> GroupDescription:
        return self.coordinator.describe_group(group_id)

    def list_groups(self, states: list[str] | None = None) -> list[tuple[str, str, str]]:
        return self.coordinator.list_groups(states)

    async def delete_groups(self, group_ids: list[str]) -> dict[str, int]:
        results, fx = self.coordinator.delete_groups(self.now_ms(), group_ids)
        try:
            await self._settle(fx, raise_on_failure=True)
        except PersistError:
            return {g: (ErrorCode.COORDINATOR_NOT_AVAILABLE if c == ErrorCode.NONE else c) for g, c in results.items()}
        return results
