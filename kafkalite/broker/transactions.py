"""The asyncio shell around the pure transaction coordinator (kafkalite.txn).

It appends the coordinator's records to `__transaction_state` (durably) before the state they describe holds,
writes the transaction markers of a PrepareCommit/PrepareAbort to every partition of the transaction (through a
MarkerWriter) and then records its completion, and aborts transactions that outlive their timeout, checked every
transaction.abort.timed.out.transaction.cleanup.interval.ms on the injected clock.

Standalone only: this broker coordinates every transactional id (`await load_all()` before serving).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Protocol

from kafkalite.clock import Clock, TimerHandle
from kafkalite.group import OFFSETS_TOPIC
from kafkalite.group.ports import OffsetsLog
from kafkalite.protocol.codec import encode_data
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.messages.data.control_record import ABORT, COMMIT, CONTROL_RECORD_KEY, END_TXN_MARKER
from kafkalite.protocol.record_batch import CONTROL_BIT, TRANSACTIONAL_BIT, build_batch
from kafkalite.txn import TRANSACTION_STATE_TOPIC, Plan, TransactionCoordinator, TxnConfig, TxnMetadata, TxnState

log = logging.getLogger("kafkalite.transactions")

COORDINATOR_EPOCH = 0  # standalone: this broker has always coordinated every transactional id
_MARKER_RETRY_S = 1.0
# EndTxn answers once the markers are written, or after this long: its Prepare record is durable, so the
# transaction will complete (Kafka answers right after that record; waiting spares the client a round of
# CONCURRENT_TRANSACTIONS on its next transaction).
_END_TXN_WAIT_S = 10.0


class MarkerWriter(Protocol):
    async def write_marker(self, topic: str, index: int, batch: bytes, producer_id: int, commit: bool) -> None:
        """Append a marker (a control batch of `producer_id`'s transaction) to a partition and wait until it is
        committed; raises on failure, and LookupError when the partition no longer exists (its marker is then not
        needed)."""
        ...


class LocalMarkers:
    """The MarkerWriter over this broker's replicas; a marker on a __consumer_offsets partition also settles the
    transaction's TxnOffsetCommits in the group service."""

    def __init__(self, replicas, groups):
        self.replicas = replicas
        self.groups = groups

    async def write_marker(self, topic: str, index: int, batch: bytes, producer_id: int, commit: bool) -> None:
        await self.replicas.write_marker(topic, index, batch)
        if topic == OFFSETS_TOPIC:
            self.groups.complete_transaction(index, producer_id, commit)


def marker_batch(producer_id: int, producer_epoch: int, commit: bool, timestamp_ms: int) -> bytes:
    """A transaction marker: a control batch of one control record, transactional, with the producer's id and
    epoch and no sequence."""
    key = encode_data(CONTROL_RECORD_KEY, 0, {"type": COMMIT if commit else ABORT})
    value = encode_data(END_TXN_MARKER, 0, {"coordinator_epoch": COORDINATOR_EPOCH})
    return build_batch([(key, value)], timestamps=timestamp_ms, producer_id=producer_id,
                       producer_epoch=producer_epoch, attributes=CONTROL_BIT | TRANSACTIONAL_BIT)


class TransactionService:
    def __init__(self, config: TxnConfig, txn_log: OffsetsLog, markers: MarkerWriter,
                 allocate_producer_id: Callable[[], Awaitable[int]], clock: Clock, cleanup_interval_ms: int = 10_000):
        self.coordinator = TransactionCoordinator(config)
        self.txn_log = txn_log
        self.markers = markers
        self.allocate_producer_id = allocate_producer_id
        self.clock = clock
        self.cleanup_interval_ms = cleanup_interval_ms
        self._timer: TimerHandle | None = None
        self._background: set[asyncio.Task] = set()
        self._append_lock = asyncio.Lock()
        self._started = False

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def coordinator_error(self, transactional_id: str) -> int:
        if not self._started:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        return self.coordinator.coordinator_error(transactional_id)

    # ------------------------------------------------------------ life cycle

    async def load_all(self) -> None:
        """Rebuild every transactional id from __transaction_state; finish the transactions a crash left in
        PrepareCommit/PrepareAbort; start the timeout checks."""
        count = self.txn_log.partition_count()
        if count is not None and count != self.coordinator.config.num_partitions:
            log.warning("%s has %d partitions, not the configured %d; using %d", TRANSACTION_STATE_TOPIC, count,
                        self.coordinator.config.num_partitions, count)
            self.coordinator.config = TxnConfig(count, self.coordinator.config.max_timeout_ms)
        unfinished: list[TxnMetadata] = []
        for partition in range(self.coordinator.config.num_partitions):
            rows = await asyncio.to_thread(self.txn_log.read_partition, partition) if count is not None else []
            unfinished += self.coordinator.load_partition(partition, rows, self.now_ms())
        self._started = True
        log.info("loaded %d transactional id(s)", len(self.coordinator.transactions))
        for meta in unfinished:
            meta.pending = True  # nothing else may change it until its markers are written
            self._spawn(self._finish(meta))
        self._arm_timer()

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._started = False

    async def settle_background(self) -> None:
        """Wait until the aborts and marker writes started in the background are done (tests)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _arm_timer(self) -> None:
        self._timer = self.clock.call_later(self.cleanup_interval_ms, self._check_timeouts)

    def _check_timeouts(self) -> None:
        for plan in self.coordinator.expired(self.now_ms()):
            log.info("transactional id %r timed out", plan.transactional_id)
            self._spawn(self._run_and_finish(plan))
        self._arm_timer()

    # ------------------------------------------------------------ plans

    async def _run(self, plan: Plan) -> bool:
        """Persist the plan's record, then let its state hold. False when the record could not be written."""
        if not plan.writes:
            return True
        for event in plan.events:
            log.info("%s", event)
        batch = build_batch([(plan.key, plan.value)], timestamps=self.now_ms())
        try:
            async with self._append_lock:
                await self.txn_log.append(plan.partition, batch)
        except Exception:  # any storage failure: the client retries on COORDINATOR_NOT_AVAILABLE
            log.exception("appending to %s-%d failed", TRANSACTION_STATE_TOPIC, plan.partition)
            self.coordinator.abandon(plan)
            return False
        self.coordinator.apply(plan)
        return True

    async def _run_and_finish(self, plan: Plan) -> bool:
        if not await self._run(plan):
            return False
        if plan.markers is not None:
            plan.new.pending = True
            await self._finish(plan.markers)
        return True

    async def _finish(self, meta: TxnMetadata) -> None:
        """Write the markers of a PrepareCommit/PrepareAbort transaction to all its partitions, then complete it.
        A partition that fails is tried again until it takes its marker."""
        commit = meta.state == TxnState.PREPARE_COMMIT
        batch = marker_batch(meta.producer_id, meta.producer_epoch, commit, self.now_ms())
        remaining = sorted(meta.partitions)
        while remaining:
            failed = []
            for topic, index in remaining:
                try:
                    await self.markers.write_marker(topic, index, batch, meta.producer_id, commit)
                except LookupError:
                    log.info("%s-%d is gone: no %s marker needed", topic, index, "COMMIT" if commit else "ABORT")
                except Exception as e:  # noqa: BLE001 - retried: a transaction's markers must all be written
                    log.warning("writing the marker of %r to %s-%d failed (%s); retrying", meta.transactional_id,
                                topic, index, e)
                    failed.append((topic, index))
            remaining = failed
            if remaining:
                await asyncio.sleep(_MARKER_RETRY_S)  # back off before the next attempt at a failing partition
        meta.pending = False
        while not await self._run(self.coordinator.complete(self.now_ms(), meta.transactional_id)):
            await asyncio.sleep(_MARKER_RETRY_S)

    # ------------------------------------------------------------ requests

    async def init_producer_id(self, transactional_id: str, timeout_ms: int, expected_id: int,
                               expected_epoch: int) -> tuple[int, int, int]:
        """(error code, producer id, epoch)."""
        new_id = -1
        if self.coordinator.needs_producer_id(transactional_id):
            new_id = await self.allocate_producer_id()
        plan = self.coordinator.init_producer_id(self.now_ms(), transactional_id, timeout_ms, expected_id,
                                                 expected_epoch, new_id)
        if plan.markers is not None:  # an open transaction is aborted first; the client retries
            self._spawn(self._run_and_finish(plan))
            return plan.error, -1, -1
        if not await self._run(plan):
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, -1, -1
        return plan.error, plan.producer_id, plan.producer_epoch

    async def add_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                             partitions: set[tuple[str, int]]) -> int:
        plan = self.coordinator.add_partitions(self.now_ms(), transactional_id, producer_id, producer_epoch,
                                               partitions)
        if plan.error == ErrorCode.NONE and not await self._run(plan):
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        return plan.error

    def check_offset_commit(self, transactional_id: str, producer_id: int, producer_epoch: int,
                            offsets_partition: tuple[str, int]) -> int:
        return self.coordinator.check_offset_commit(transactional_id, producer_id, producer_epoch, offsets_partition)

    async def end_txn(self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool) -> int:
        """The answer comes once the markers are written and the transaction is complete (standalone: local
        appends), so the producer's next transaction does not first meet CONCURRENT_TRANSACTIONS."""
        plan = self.coordinator.end_txn(self.now_ms(), transactional_id, producer_id, producer_epoch, commit)
        if plan.error != ErrorCode.NONE:
            return plan.error
        if not await self._run(plan):
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if plan.markers is not None:
            plan.new.pending = True
            task = asyncio.ensure_future(self._finish(plan.markers))  # not cancelled with the request
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            await asyncio.wait([task], timeout=_END_TXN_WAIT_S)
        return ErrorCode.NONE
