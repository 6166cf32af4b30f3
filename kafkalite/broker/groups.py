"""The asyncio shell around the pure group coordinator (kafkalite.group).

It turns the coordinator's effects into I/O: parked JoinGroup/SyncGroup requests become futures, timers
become the clock's call_later handles, records are appended to `__consumer_offsets` (and made durable)
before the replies that depend on them are delivered, and group state changes are logged at INFO.

It reaches the rest of the broker only through two ports: an `OffsetsLog` (kafkalite.group.ports) and a
`Clock` (kafkalite.clock). It serves the groups of the `__consumer_offsets` partitions it has loaded:
standalone, `await load_all()` before serving; in cluster mode `await load_partition(p)` and
`unload_partition(p)` as the partitions' leadership comes and goes. `await stop()` on shutdown.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from typing import TYPE_CHECKING, Awaitable, Callable

from kafkalite.clock import Clock, TimerHandle
from kafkalite.group import (
    OFFSETS_TOPIC,
    GroupConfig,
    GroupCoordinator,
    JoinRequest,
    JoinResult,
    OffsetCommitRequest,
    SyncRequest,
    SyncResult,
    TimerKey,
)
from kafkalite.group import records as rec
from kafkalite.group.coordinator import CommittedOffset, Effects, GroupDescription
from kafkalite.group.types import CommitPlan
from kafkalite.group.ports import OffsetsLog
from kafkalite.protocol.errors import DecodeError, ErrorCode
from kafkalite.protocol.codec import decode_data
from kafkalite.protocol.messages.data.control_record import COMMIT, CONTROL_RECORD_KEY
from kafkalite.protocol.record_batch import TRANSACTIONAL_BIT, build_batch, iter_batches

if TYPE_CHECKING:
    from kafkalite.log.manager import LogManager

log = logging.getLogger("kafkalite.groups")

__all__ = ["OFFSETS_TOPIC", "GroupService", "LocalOffsetsLog", "PersistError", "group_settings"]

_READ_CHUNK = 1 << 20


class PersistError(Exception):
    """Records could not be appended to __consumer_offsets."""


def group_settings(config) -> object:
    """The coordinator's settings from the broker config: its `groups` mapping, else its Kafka-named settings."""
    for name in ("groups", "settings"):
        value = getattr(config, name, None)
        if value is not None:
            return value
    return None


class LocalOffsetsLog:
    """The OffsetsLog port over this broker's own logs (of __consumer_offsets, or another internal topic of the
    same shape: __transaction_state)."""

    def __init__(self, logs: "LogManager", append_records: Callable[[str, int, bytes], Awaitable[int]],
                 topic: str = OFFSETS_TOPIC):
        self.logs = logs
        self._append_records = append_records
        self.topic = topic
        self._open: dict[int, dict[int, list]] = {}  # partition -> producer id -> rows of its open transaction

    def partition_count(self) -> int | None:
        if self.topic not in self.logs.topics():
            return None
        return self.logs.topic(self.topic).partitions

    def read_partition(self, partition: int) -> list[tuple[bytes | None, bytes | None]]:
        """The rows of committed data in log order: a transaction's rows (TxnOffsetCommit) count where its COMMIT
        marker is, an aborted one's not at all; those of transactions still open are kept for
        `open_transactions`."""
        plog = self.logs.partition(self.topic, partition)
        records: list[tuple[bytes | None, bytes | None]] = []
        open_txns: dict[int, list] = {}
        offset = plog.log_start_offset
        try:
            while True:
                chunks = plog.read(offset, _READ_CHUNK)
                start = offset
                for chunk in chunks:
                    for batch in iter_batches(chunk):
                        if batch.is_control:
                            rows = open_txns.pop(batch.producer_id, [])
                            if batch.base_offset >= offset and _is_commit(batch):
                                records.extend(rows)
                        elif batch.is_transactional:
                            open_txns.setdefault(batch.producer_id, []).extend(
                                (r.key, r.value) for r in batch.records() if r.offset >= offset)
                        else:
                            records.extend((r.key, r.value) for r in batch.records() if r.offset >= offset)
                        offset = max(offset, batch.next_offset)
                if offset <= start:
                    break
        except DecodeError:
            log.exception("%s-%d: stopped reading at offset %d", self.topic, partition, offset)
        self._open[partition] = open_txns
        return records

    def open_transactions(self, partition: int) -> dict[int, list[tuple[bytes | None, bytes | None]]]:
        """After read_partition: the rows of each producer's transaction that has no marker yet."""
        return self._open.pop(partition, {})

    async def append(self, partition: int, batch: bytes) -> int:
        return await self._append_records(self.topic, partition, batch)


def _is_commit(batch) -> bool:
    for record in batch.records():
        return decode_data(CONTROL_RECORD_KEY, record.key)[1]["type"] == COMMIT
    return False


class GroupService:
    def __init__(self, settings, offsets_log: OffsetsLog, clock: Clock):
        self.config = GroupConfig.from_mapping(settings)
        self.coordinator = GroupCoordinator(self.config)
        self.offsets_log = offsets_log
        self.clock = clock
        self.fenced: Callable[[], bool] = lambda: False  # cluster mode: the broker lost its session
        self._started = False  # partition count fixed and the offset expiry timer armed, by the first load
        self._load_epochs: dict[int, int] = {}  # bumped by every load and unload: a load overtaken by one is dropped
        self._timers: dict[TimerKey, TimerHandle] = {}
        # token -> (future, result to give it if the service stops first)
        self._waiters: dict[int, tuple[asyncio.Future, object]] = {}
        self._tokens = itertools.count(1)
        self._append_lock = asyncio.Lock()  # appends go out in the order the coordinator made them
        self._background: set[asyncio.Task] = set()
        # TxnOffsetCommits waiting for their transaction's marker: (partition, producer id) -> commit plans
        self._txn_offsets: dict[tuple[int, int], list[CommitPlan]] = {}

    def now_ms(self) -> int:
        return self.clock.now_ms()

    @property
    def loaded(self) -> bool:
        """Started, and no partition is loading. Handlers answer COORDINATOR_LOAD_IN_PROGRESS while it is False;
        per group, `coordinator_error` tells more (NOT_COORDINATOR for a partition another broker has)."""
        return self._started and not self.coordinator.loading_partitions

    def coordinator_error(self, group_id: str) -> int:
        """NONE when this broker coordinates the group; else COORDINATOR_LOAD_IN_PROGRESS or NOT_COORDINATOR (also
        while this broker is fenced from the cluster: it may no longer lead the group's partition)."""
        if self.fenced():
            return ErrorCode.NOT_COORDINATOR
        if not self._started:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        return self.coordinator.coordinator_error(group_id)

    def partition_for(self, group_id: str) -> int:
        return self.coordinator.partition_for(group_id)

    # ------------------------------------------------------------ life cycle

    def _start(self) -> None:
        if self._started:
            return
        partitions = self.offsets_log.partition_count()
        if partitions is not None and partitions != self.config.offsets_topic_num_partitions:
            # groups were placed by the existing partition count: keep using it
            log.warning("%s has %d partitions, not the configured %d; using %d", OFFSETS_TOPIC,
                        partitions, self.config.offsets_topic_num_partitions, partitions)
            self.config = dataclasses.replace(self.config, offsets_topic_num_partitions=partitions)
            self.coordinator.config = self.config
        self._started = True
        self._act(self.coordinator.start(self.now_ms()))

    async def load_all(self) -> None:
        """Standalone start: serve every partition's groups, rebuilt from __consumer_offsets; arm their timers."""
        self._start()
        partitions = range(self.config.offsets_topic_num_partitions)
        if self.offsets_log.partition_count() is None:
            log.warning("%s does not exist: starting with no consumer groups", OFFSETS_TOPIC)
            for partition in partitions:
                self._act(self.coordinator.load_partition(partition, [], self.now_ms()))
            return
        for partition in partitions:  # all at once: none answers NOT_COORDINATOR while the others load
            self.coordinator.begin_loading(partition)
        records = 0
        for partition in partitions:
            records += await self._load(partition)
        log.info("loaded %d consumer group(s) from %d record(s)", len(self.coordinator.groups), records)

    async def load_partition(self, partition: int) -> None:
        """Become the coordinator of one partition's groups (this broker now leads it)."""
        self._start()
        self.coordinator.begin_loading(partition)
        records = await self._load(partition)
        groups = sum(1 for g in self.coordinator.groups if self.partition_for(g) == partition)
        log.info("%s-%d: loaded %d consumer group(s) from %d record(s)", OFFSETS_TOPIC, partition, groups, records)

    async def _load(self, partition: int) -> int:
        epoch = self._load_epochs[partition] = self._load_epochs.get(partition, 0) + 1
        try:
            records = await asyncio.to_thread(self.offsets_log.read_partition, partition)
        except BaseException:
            if self._load_epochs.get(partition) == epoch:
                self._act_now(self.coordinator.unload_partition(partition))
            raise
        if self._load_epochs.get(partition) != epoch:
            return 0  # unloaded (or loaded again) while it was read: that call decides
        # a partition loaded again replaces its groups: their parked requests are answered
        self._act_now(self.coordinator.load_partition(partition, records, self.now_ms()))
        self._reinstate_open_transactions(partition)
        return len(records)

    def _reinstate_open_transactions(self, partition: int) -> None:
        """TxnOffsetCommits of transactions still open in the log wait for their markers again."""
        for key in [k for k in self._txn_offsets if k[0] == partition]:
            del self._txn_offsets[key]
        open_transactions = getattr(self.offsets_log, "open_transactions", None)
        if open_transactions is None:
            return
        for producer_id, rows in open_transactions(partition).items():
            plans: dict[str, CommitPlan] = {}
            for key, value in rows:
                try:
                    k = rec.decode_key(key) if key is not None else None
                    if isinstance(k, rec.OffsetKey) and value is not None:
                        v = rec.decode_offset_value(value)
                        plan = plans.setdefault(k.group_id, CommitPlan(k.group_id))
                        plan.accepted[(k.topic, k.partition)] = CommittedOffset(
                            v.offset, v.leader_epoch, v.metadata, v.commit_timestamp_ms)
                except DecodeError:
                    continue
            if plans:
                self._txn_offsets[(partition, producer_id)] = list(plans.values())

    def unload_partition(self, partition: int) -> None:
        """Stop coordinating one partition's groups (its leadership moved away). Nothing is written."""
        self._load_epochs[partition] = self._load_epochs.get(partition, 0) + 1
        groups = sum(1 for g in self.coordinator.groups if self.partition_for(g) == partition)
        self._act_now(self.coordinator.unload_partition(partition))
        log.info("%s-%d: unloaded %d consumer group(s)", OFFSETS_TOPIC, partition, groups)

    async def stop(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        await self.settle_background()
        for future, on_stop in self._waiters.values():
            if not future.done():
                future.set_result(on_stop)
        self._waiters.clear()
        self._started = False

    async def settle_background(self) -> None:
        """Wait until the records that timers produced (expired members, offsets) are persisted."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # ------------------------------------------------------------ effects

    def _act(self, fx: Effects) -> None:
        """The effects that need no waiting: log lines, void timers, new timers."""
        for event in fx.events:
            log.info("%s", event)
        if fx.cancel_group_timers:
            void = set(fx.cancel_group_timers)
            for key in [k for k in self._timers if k.group_id in void]:
                self._timers.pop(key).cancel()
        if not fx.timers:
            return
        now = self.now_ms()
        for deadline, key in fx.timers:
            old = self._timers.pop(key, None)
            if old is not None:
                old.cancel()
            self._timers[key] = self.clock.call_later(deadline - now, lambda key=key: self._fire(key))

    def _act_now(self, fx: Effects) -> None:
        """Effects with no records to persist first: act on them and deliver their replies."""
        self._act(fx)
        self._deliver(fx)

    def _fire(self, key: TimerKey) -> None:
        self._timers.pop(key, None)
        fx = self.coordinator.timer_fired(key, self.now_ms())
        if fx.records:
            task = asyncio.ensure_future(self._settle(fx))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        else:
            self._act_now(fx)

    async def _settle(self, fx: Effects, *, raise_on_failure: bool = False) -> None:
        """Act on the effects, persist their records, then deliver their replies."""
        self._act(fx)
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

    async def _persist(self, records: list[tuple[int, bytes, bytes | None]],
                       transaction: tuple[int, int] | None = None) -> None:
        """Append the records; `transaction` (producer id, epoch): as that producer's transactional batch."""
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for partition, key, value in records:
            by_partition.setdefault(partition, []).append((key, value))
        now = self.now_ms()
        async with self._append_lock:
            for partition, rows in by_partition.items():
                if transaction is None:
                    batch = build_batch(rows, timestamps=now)
                else:
                    batch = build_batch(rows, timestamps=now, producer_id=transaction[0],
                                        producer_epoch=transaction[1], attributes=TRANSACTIONAL_BIT)
                try:
                    await self.offsets_log.append(partition, batch)
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
            return {k: (ErrorCode.COORDINATOR_NOT_AVAILABLE if v == ErrorCode.NONE else v)
                    for k, v in plan.errors.items()}
        self.coordinator.apply_commit(plan, self.now_ms())
        return plan.errors

    async def txn_offset_commit(self, request: OffsetCommitRequest, producer_id: int,
                                producer_epoch: int) -> dict[tuple[str, int], int]:
        """TxnOffsetCommit: the offsets are written as the producer's transactional batch and become visible when
        the transaction's COMMIT marker reaches the group's partition (`complete_transaction`)."""
        plan = self.coordinator.offset_commit(self.now_ms(), request, transactional=True)
        self._act(plan.effects)
        try:
            if plan.effects.records:
                await self._persist(plan.effects.records, (producer_id, producer_epoch))
        except PersistError:
            return {k: (ErrorCode.COORDINATOR_NOT_AVAILABLE if v == ErrorCode.NONE else v)
                    for k, v in plan.errors.items()}
        finally:
            self._deliver(plan.effects)
        if plan.accepted:
            key = (self.partition_for(request.group_id), producer_id)
            self._txn_offsets.setdefault(key, []).append(plan)
        return plan.errors

    def pending_transactional_offsets(self, group_id: str) -> set[tuple[str, int]]:
        """The group's partitions that a TxnOffsetCommit of a transaction not yet ended covers."""
        partition = self.partition_for(group_id)
        return {tp for (p, _), plans in self._txn_offsets.items() if p == partition
                for plan in plans if plan.group_id == group_id for tp in plan.accepted}

    def complete_transaction(self, partition: int, producer_id: int, commit: bool) -> None:
        """A transaction marker reached a __consumer_offsets partition: its TxnOffsetCommits hold, or are void."""
        for plan in self._txn_offsets.pop((partition, producer_id), []):
            if commit:
                self.coordinator.apply_commit(plan, self.now_ms())

    def offset_fetch(self, group_id: str,
                     partitions: list[tuple[str, int]] | None) -> list[tuple[str, int, CommittedOffset | None]]:
        return self.coordinator.offset_fetch(group_id, partitions)

    async def offset_delete(self, group_id: str,
                            partitions: list[tuple[str, int]]) -> tuple[int, dict[tuple[str, int], int]]:
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
