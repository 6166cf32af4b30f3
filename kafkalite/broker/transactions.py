"""The asyncio shell around the pure transaction coordinator (kafkalite.txn).

It appends the coordinator's records to `__transaction_state` (durably) before the state they describe holds,
writes the transaction markers of a PrepareCommit/PrepareAbort to every partition of the transaction (through a
MarkerWriter) and then records its completion, and aborts transactions that outlive their timeout, checked every
transaction.abort.timed.out.transaction.cleanup.interval.ms on the injected clock.

It serves the transactional ids of the `__transaction_state` partitions it has loaded: standalone every one
(`await load_all()` before serving, coordinator epoch 0); in cluster mode `start()`, then `await load_partition(p,
leader_epoch)` and `unload_partition(p)` as this broker gains and loses the partitions' leadership, exactly as the
group coordinators follow `__consumer_offsets`. The coordinator epoch is the partition's leader epoch; markers carry
it. Markers reach partitions on other brokers through `RoutedMarkers` (WriteTxnMarkers requests).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from typing import Awaitable, Callable, Protocol

from kafkalite.clock import Clock, TimerHandle
from kafkalite.group import OFFSETS_TOPIC, partition_for
from kafkalite.group.ports import OffsetsLog
from kafkalite.metadata.image import BrokerInfo
from kafkalite.protocol.api_keys import ApiKey
from kafkalite.protocol.codec import decode_data, encode_data
from kafkalite.protocol.errors import DecodeError, ErrorCode
from kafkalite.protocol.messages.data.control_record import ABORT, COMMIT, CONTROL_RECORD_KEY, END_TXN_MARKER
from kafkalite.protocol.record_batch import CONTROL_BIT, TRANSACTIONAL_BIT, RecordBatch, build_batch
from kafkalite.replication.fetcher import PeerConnection
from kafkalite.txn import TRANSACTION_STATE_TOPIC, Plan, TransactionCoordinator, TxnConfig, TxnMetadata, TxnState

log = logging.getLogger("kafkalite.transactions")

COORDINATOR_EPOCH = 0  # standalone: this broker has always coordinated every transactional id
WRITE_TXN_MARKERS_VERSION = 1
_MARKER_RETRY_S = 1.0
# A remote leader answers once its marker is committed, which waits for its ISR (a dead follower leaves it after
# replica.lag.time.max.ms): a request unanswered for this long is given up and tried again.
_MARKER_REQUEST_TIMEOUT_S = 60.0
VERIFY_VERSION = 4  # AddPartitionsToTxn: the first batched version, with VerifyOnly
# A verification the coordinator leaves unanswered this long fails the produce with a retriable error.
_VERIFY_REQUEST_TIMEOUT_S = 10.0
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


class MarkerNotWritten(Exception):
    """A partition's leader did not take a marker (it moved, has none yet, or refused); the coordinator retries."""


class BrokerPeers:
    """Connections kept to other brokers, one per broker and one request at a time on each. A connection that
    fails (or is cancelled mid-request) is closed: the next request starts on a fresh one."""

    def __init__(self, client_id: str):
        self.client_id = client_id
        self._peers: dict[int, tuple[PeerConnection, asyncio.Lock]] = {}

    async def request(self, broker: BrokerInfo, api_key: int, version: int, body: dict, timeout_s: float) -> dict:
        connection, lock = self._peer(broker)
        async with lock:
            try:
                return await connection.request(api_key, version, body, timeout_s)
            except BaseException:
                connection.close()
                raise

    def _peer(self, broker: BrokerInfo) -> tuple[PeerConnection, asyncio.Lock]:
        peer = self._peers.get(broker.node_id)
        if peer is None or peer[0].broker != broker:  # new, or restarted at another address
            if peer is not None:
                peer[0].close()
            peer = self._peers[broker.node_id] = (PeerConnection(broker, self.client_id), asyncio.Lock())
        return peer

    def close(self) -> None:
        for connection, _ in self._peers.values():
            connection.close()
        self._peers.clear()


class RoutedMarkers:
    """Cluster mode's MarkerWriter: each marker goes to its partition's current leader in the metadata image. This
    broker's own replicas take it directly (`local`); another leader gets a WriteTxnMarkers request over a connection
    kept per broker, one request at a time. A partition missing from the image is gone (LookupError)."""

    def __init__(self, metadata, local: LocalMarkers, node_id: int, timeout_s: float = _MARKER_REQUEST_TIMEOUT_S):
        self.metadata = metadata
        self.local = local
        self.node_id = node_id
        self.timeout_s = timeout_s
        self._peers = BrokerPeers(f"kafkalite-txn-{node_id}")

    async def write_marker(self, topic: str, index: int, batch: bytes, producer_id: int, commit: bool) -> None:
        image = self.metadata.image
        info = image.partition(topic, index)
        if info is None:
            raise LookupError(f"{topic}-{index} does not exist")
        if info.leader == self.node_id:
            await self.local.write_marker(topic, index, batch, producer_id, commit)
            return
        leader = image.brokers.get(info.leader)
        if leader is None:
            raise MarkerNotWritten(f"{topic}-{index} has no live leader")
        producer_epoch, coordinator_epoch = marker_fields(batch)
        request = {"markers": [{"producer_id": producer_id, "producer_epoch": producer_epoch,
                                "transaction_result": commit, "coordinator_epoch": coordinator_epoch,
                                "topics": [{"name": topic, "partition_indexes": [index]}]}]}
        response = await self._peers.request(leader, ApiKey.WRITE_TXN_MARKERS, WRITE_TXN_MARKERS_VERSION, request,
                                             self.timeout_s)
        code = response["markers"][0]["topics"][0]["partitions"][0]["error_code"]
        if code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION and self.metadata.image.partition(topic, index) is None:
            raise LookupError(f"{topic}-{index} does not exist")
        if code != ErrorCode.NONE:
            raise MarkerNotWritten(f"broker {leader.node_id} answered {ErrorCode(code).name} for {topic}-{index}")

    def close(self) -> None:
        self._peers.close()


class RemoteVerification:
    """Cluster mode: a partition leader asks the transactional id's coordinator on another broker (the leader of its
    __transaction_state partition in the metadata image) whether partitions are in the producer's ongoing
    transaction, with AddPartitionsToTxn v4 VerifyOnly (KIP-890), over connections kept per broker."""

    def __init__(self, metadata, node_id: int, timeout_s: float = _VERIFY_REQUEST_TIMEOUT_S):
        self.metadata = metadata
        self.node_id = node_id
        self.timeout_s = timeout_s
        self._peers = BrokerPeers(f"kafkalite-verify-{node_id}")

    async def verify(self, transactional_id: str, producer_id: int, producer_epoch: int,
                     partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The coordinator's code for each partition; NOT_COORDINATOR when this broker leads the id's partition
        (it is not loaded here yet), COORDINATOR_NOT_AVAILABLE when nobody does, NETWORK_EXCEPTION when the
        coordinator did not answer."""
        image = self.metadata.image
        topic = image.topic(TRANSACTION_STATE_TOPIC)
        leader = None if topic is None else image.leader_of(
            TRANSACTION_STATE_TOPIC, partition_for(transactional_id, len(topic.partitions)))
        if leader is None:
            return dict.fromkeys(partitions, ErrorCode.COORDINATOR_NOT_AVAILABLE)
        if leader.node_id == self.node_id:
            return dict.fromkeys(partitions, ErrorCode.NOT_COORDINATOR)
        by_topic: dict[str, list[int]] = {}
        for name, index in sorted(partitions):
            by_topic.setdefault(name, []).append(index)
        request = {"transactions": [{
            "transactional_id": transactional_id, "producer_id": producer_id, "producer_epoch": producer_epoch,
            "verify_only": True,
            "topics": [{"name": name, "partitions": indexes} for name, indexes in by_topic.items()],
        }]}
        try:
            response = await self._peers.request(leader, ApiKey.ADD_PARTITIONS_TO_TXN, VERIFY_VERSION, request,
                                                 self.timeout_s)
        except (OSError, EOFError, asyncio.TimeoutError, DecodeError) as e:  # no answer
            log.info("verifying %r with broker %d failed: %s", transactional_id, leader.node_id, e)
            return dict.fromkeys(partitions, ErrorCode.NETWORK_EXCEPTION)
        if response["error_code"] != ErrorCode.NONE:
            return dict.fromkeys(partitions, response["error_code"])
        codes = {(t["name"], p["partition_index"]): p["partition_error_code"]
                 for txn in response["results_by_transaction"] for t in txn["topic_results"]
                 for p in t["results_by_partition"]}
        return {tp: codes.get(tp, ErrorCode.UNKNOWN_SERVER_ERROR) for tp in partitions}

    def close(self) -> None:
        self._peers.close()


def marker_batch(producer_id: int, producer_epoch: int, commit: bool, timestamp_ms: int,
                 coordinator_epoch: int = COORDINATOR_EPOCH) -> bytes:
    """A transaction marker: a control batch of one control record, transactional, with the producer's id and
    epoch and no sequence; its value names the coordinator epoch."""
    key = encode_data(CONTROL_RECORD_KEY, 0, {"type": COMMIT if commit else ABORT})
    value = encode_data(END_TXN_MARKER, 0, {"coordinator_epoch": coordinator_epoch})
    return build_batch([(key, value)], timestamps=timestamp_ms, producer_id=producer_id,
                       producer_epoch=producer_epoch, attributes=CONTROL_BIT | TRANSACTIONAL_BIT)


def marker_fields(batch: bytes) -> tuple[int, int]:
    """(producer epoch, coordinator epoch) of a batch made by `marker_batch`."""
    parsed = RecordBatch(memoryview(bytearray(batch)))
    record = next(iter(parsed.records()))
    return parsed.producer_epoch, decode_data(END_TXN_MARKER, record.value)[1]["coordinator_epoch"]


class TransactionService:
    def __init__(self, config: TxnConfig, txn_log: OffsetsLog, markers: MarkerWriter,
                 allocate_producer_id: Callable[[], Awaitable[int]], clock: Clock, cleanup_interval_ms: int = 10_000,
                 fenced: Callable[[], bool] = lambda: False, expiry_interval_ms: int = 3_600_000,
                 remote: RemoteVerification | None = None):
        self.coordinator = TransactionCoordinator(config)
        self.remote = remote  # cluster mode: how a partition leader verifies with another broker's coordinator
        self.txn_log = txn_log
        self.markers = markers
        self.allocate_producer_id = allocate_producer_id
        self.clock = clock
        self.cleanup_interval_ms = cleanup_interval_ms
        self.expiry_interval_ms = expiry_interval_ms  # transaction.remove.expired.transaction.cleanup.interval.ms
        self._expiry_timer: TimerHandle | None = None
        self.fenced = fenced  # cluster mode: the broker lost its session, and may lead nothing now
        self._timer: TimerHandle | None = None
        self._background: set[asyncio.Task] = set()
        self._by_partition: dict[int, set[asyncio.Task]] = {}  # a partition's marker writes, cancelled on unload
        self._append_lock = asyncio.Lock()
        self._started = False
        self._epochs: dict[int, int] = {}  # the partitions coordinated here -> their coordinator epoch
        self._loading: set[int] = set()
        self._generations: dict[int, int] = {}  # bumped by every load and unload: work overtaken by one is dropped

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def coordinator_error(self, transactional_id: str) -> int:
        """NONE when this broker coordinates the transactional id; COORDINATOR_LOAD_IN_PROGRESS while its partition
        loads (or before a standalone broker's load); NOT_COORDINATOR when another broker leads that partition, or
        this one lost its session with the cluster."""
        if self.fenced():
            return ErrorCode.NOT_COORDINATOR
        partition = self.coordinator.partition_for(transactional_id)
        if not self._started or partition in self._loading:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        if partition not in self._epochs:
            return ErrorCode.NOT_COORDINATOR
        return self.coordinator.coordinator_error(transactional_id)

    def _coordinates(self, partition: int, generation: int) -> bool:
        return partition in self._epochs and self._generations.get(partition) == generation

    # ------------------------------------------------------------ life cycle

    def start(self, partition_count: int | None = None) -> None:
        """Serve (partitions answer NOT_COORDINATOR until loaded) and start the timeout checks."""
        if partition_count is not None:
            self._use_partition_count(partition_count)
        if not self._started:
            self._started = True
            self._arm_timer()
            self._arm_expiry_timer()

    def _use_partition_count(self, count: int) -> None:
        """Transactional ids were placed by the existing topic's partition count: keep using it."""
        if count != self.coordinator.config.num_partitions:
            log.warning("%s has %d partitions, not the configured %d; using %d", TRANSACTION_STATE_TOPIC, count,
                        self.coordinator.config.num_partitions, count)
            self.coordinator.config = dataclasses.replace(self.coordinator.config, num_partitions=count)

    async def load_all(self) -> None:
        """Standalone: rebuild every transactional id from __transaction_state; finish the transactions a crash
        left in PrepareCommit/PrepareAbort; start the timeout checks."""
        count = self.txn_log.partition_count()
        if count is not None:
            self._use_partition_count(count)
        partitions = range(self.coordinator.config.num_partitions)
        self._loading.update(partitions)  # all at once: none answers NOT_COORDINATOR while the others load
        self.start()
        for partition in partitions:
            await self.load_partition(partition, COORDINATOR_EPOCH)
        log.info("loaded %d transactional id(s)", len(self.coordinator.transactions))

    async def load_partition(self, partition: int, coordinator_epoch: int) -> None:
        """Coordinate one partition's transactional ids (this broker now leads it, at leader epoch
        `coordinator_epoch`): rebuild them from the log, then finish those left in PrepareCommit/PrepareAbort."""
        self.unload_partition(partition)  # loaded before at another epoch: start afresh
        generation = self._generations[partition]
        self._loading.add(partition)
        try:
            exists = self.txn_log.partition_count() is not None
            rows = await asyncio.to_thread(self.txn_log.read_partition, partition) if exists else []
        finally:
            if self._generations.get(partition) == generation:
                self._loading.discard(partition)
        if self._generations.get(partition) != generation:
            return  # unloaded (or loaded again) while it was read: that call decides
        unfinished = self.coordinator.load_partition(partition, rows, self.now_ms())
        self._epochs[partition] = coordinator_epoch
        if coordinator_epoch != COORDINATOR_EPOCH or rows:
            count = sum(1 for t in self.coordinator.transactions if self.coordinator.partition_for(t) == partition)
            log.info("%s-%d: coordinating %d transactional id(s) at coordinator epoch %d", TRANSACTION_STATE_TOPIC,
                     partition, count, coordinator_epoch)
        for meta in unfinished:
            meta.pending = True  # nothing else may change it until its markers are written
            self._spawn(self._finish(meta), partition)

    def unload_partition(self, partition: int) -> None:
        """Stop coordinating one partition's transactional ids (its leadership moved away). Nothing is written;
        marker writes under way stop: the new coordinator finishes them from the log."""
        self._generations[partition] = self._generations.get(partition, 0) + 1
        self._loading.discard(partition)
        if self._epochs.pop(partition, None) is None:
            return
        for task in self._by_partition.pop(partition, set()):
            task.cancel()
        count = self.coordinator.unload_partition(partition)
        log.info("%s-%d: no longer coordinating; %d transactional id(s) unloaded", TRANSACTION_STATE_TOPIC,
                 partition, count)

    async def stop(self) -> None:
        for timer in (self._timer, self._expiry_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._expiry_timer = None
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._started = False

    async def settle_background(self) -> None:
        """Wait until the aborts and marker writes started in the background are done (tests)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _spawn(self, coro, partition: int | None) -> asyncio.Task:
        """A background task, cancelled by stop() and, when it works for a `partition`, by its unload."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        if partition is not None:
            self._by_partition.setdefault(partition, set()).add(task)
            task.add_done_callback(lambda t: self._by_partition.get(partition, set()).discard(t))
        return task

    def _arm_timer(self) -> None:
        self._timer = self.clock.call_later(self.cleanup_interval_ms, self._check_timeouts)

    def _check_timeouts(self) -> None:
        if not self.fenced():
            for plan in self.coordinator.expired(self.now_ms()):
                log.info("transactional id %r timed out", plan.transactional_id)
                self._start_ending(plan)
        self._arm_timer()

    def _arm_expiry_timer(self) -> None:
        self._expiry_timer = self.clock.call_later(self.expiry_interval_ms, self._expire_ids)

    def _expire_ids(self) -> None:
        if not self.fenced():
            for plan in self.coordinator.expired_ids(self.now_ms()):
                self._spawn(self._run(plan), plan.partition)
        self._arm_expiry_timer()

    # ------------------------------------------------------------ plans

    async def _run(self, plan: Plan) -> int:
        """Persist the plan's record, then let its state hold. An error code when the record could not be written
        (NOT_COORDINATOR once the partition moved away, else COORDINATOR_NOT_AVAILABLE)."""
        if not plan.writes:
            return ErrorCode.NONE
        return await self._outcome(self._write_in_background(plan))

    def _write_in_background(self, plan: Plan) -> asyncio.Task:
        """An unload does not cancel a write under way: the record lands in the log or not, and whichever it is,
        the next coordinator reads it from there."""
        return self._spawn(self._write(plan), None)

    async def _outcome(self, write: asyncio.Task) -> int:
        """The write's error code. It is awaited through a shield: a request cancelled because its client went
        away leaves the write running, else the old state would stay pending (CONCURRENT_TRANSACTIONS) for
        ever. A write cancelled by stop() is NOT_COORDINATOR."""
        try:
            return await asyncio.shield(write)
        except asyncio.CancelledError:
            if write.cancelled() and not asyncio.current_task().cancelling():
                return ErrorCode.NOT_COORDINATOR
            raise

    async def _write(self, plan: Plan) -> int:
        generation = self._generations.get(plan.partition)
        if not self._coordinates(plan.partition, generation) or self.fenced():
            self.coordinator.abandon(plan)
            return ErrorCode.NOT_COORDINATOR
        for event in plan.events:
            log.info("%s", event)
        batch = build_batch([(plan.key, plan.value)], timestamps=self.now_ms())
        try:
            async with self._append_lock:
                await self.txn_log.append(plan.partition, batch)
        except Exception:  # any storage failure: the client retries on COORDINATOR_NOT_AVAILABLE
            log.exception("appending to %s-%d failed", TRANSACTION_STATE_TOPIC, plan.partition)
            self.coordinator.abandon(plan)
            return ErrorCode.COORDINATOR_NOT_AVAILABLE if self._coordinates(plan.partition, generation) \
                else ErrorCode.NOT_COORDINATOR
        if not self._coordinates(plan.partition, generation):
            return ErrorCode.NOT_COORDINATOR  # unloaded meanwhile: the new coordinator reads the record from the log
        self.coordinator.apply(plan)
        if plan.markers is not None:
            plan.new.pending = True  # nothing else may change it until its markers are written
        return ErrorCode.NONE

    def _start_ending(self, plan: Plan) -> tuple[asyncio.Task, asyncio.Task]:
        """Write a plan that ends a transaction (PrepareCommit/PrepareAbort), then its markers and the Complete
        record, all in the background: (the write, the whole)."""
        write = self._write_in_background(plan)
        return write, self._spawn(self._finish_once_written(write, plan.markers), plan.partition)

    async def _finish_once_written(self, write: asyncio.Task, meta: TxnMetadata) -> None:
        if await write == ErrorCode.NONE:
            await self._finish(meta)

    async def _finish(self, meta: TxnMetadata) -> None:
        """Write the markers of a PrepareCommit/PrepareAbort transaction to all its partitions at once, then
        complete it. A partition that fails is tried again until it takes its marker (or no longer exists)."""
        partition = self.coordinator.partition_for(meta.transactional_id)
        commit = meta.state == TxnState.PREPARE_COMMIT
        batch = marker_batch(meta.producer_id, meta.producer_epoch, commit, self.now_ms(),
                             self._epochs.get(partition, COORDINATOR_EPOCH))
        remaining = sorted(meta.partitions)
        while remaining:
            written = await asyncio.gather(*(self._write_marker(meta, tp, batch, commit) for tp in remaining))
            remaining = [tp for tp, ok in zip(remaining, written) if not ok]
            if remaining:
                await asyncio.sleep(_MARKER_RETRY_S)  # back off before the next attempt at a failing partition
        meta.pending = False
        while True:
            code = await self._run(self.coordinator.complete(self.now_ms(), meta.transactional_id))
            if code in (ErrorCode.NONE, ErrorCode.NOT_COORDINATOR):
                return  # (moved away: the new coordinator writes the markers again and completes it)
            await asyncio.sleep(_MARKER_RETRY_S)

    async def _write_marker(self, meta: TxnMetadata, tp: tuple[str, int], batch: bytes, commit: bool) -> bool:
        """True once the partition has its marker (or is gone)."""
        topic, index = tp
        try:
            await self.markers.write_marker(topic, index, batch, meta.producer_id, commit)
        except LookupError:
            log.info("%s-%d is gone: no %s marker needed", topic, index, "COMMIT" if commit else "ABORT")
        except Exception as e:  # noqa: BLE001 - retried: a transaction's markers must all be written
            log.warning("writing the marker of %r to %s-%d failed (%s); retrying", meta.transactional_id,
                        topic, index, e)
            return False
        return True

    # ------------------------------------------------------------ requests

    async def init_producer_id(self, transactional_id: str, timeout_ms: int, expected_id: int,
                               expected_epoch: int) -> tuple[int, int, int]:
        """(error code, producer id, epoch)."""
        new_id = -1
        if self.coordinator.needs_producer_id(transactional_id):
            try:
                new_id = await self.allocate_producer_id()
            except Exception:  # noqa: BLE001 - the id block could not be reserved (disk, cluster store)
                log.exception("no producer id for transactional id %r", transactional_id)
                return ErrorCode.COORDINATOR_NOT_AVAILABLE, -1, -1
            code = self.coordinator_error(transactional_id)
            if code != ErrorCode.NONE:  # the partition moved (or reloaded) while the id was reserved
                return code, -1, -1
        plan = self.coordinator.init_producer_id(self.now_ms(), transactional_id, timeout_ms, expected_id,
                                                 expected_epoch, new_id)
        if plan.markers is not None:  # an open transaction is aborted first; the client retries
            self._start_ending(plan)
            return plan.error, -1, -1
        code = await self._run(plan)
        if code != ErrorCode.NONE:
            return code, -1, -1
        return plan.error, plan.producer_id, plan.producer_epoch

    async def add_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                             partitions: set[tuple[str, int]]) -> int:
        plan = self.coordinator.add_partitions(self.now_ms(), transactional_id, producer_id, producer_epoch,
                                               partitions)
        if plan.error != ErrorCode.NONE:
            return plan.error
        return await self._run(plan)

    def check_offset_commit(self, transactional_id: str, producer_id: int, producer_epoch: int,
                            offsets_partition: tuple[str, int]) -> int:
        return self.coordinator.check_offset_commit(transactional_id, producer_id, producer_epoch, offsets_partition)

    async def end_txn(self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool) -> int:
        """The answer comes once the markers are written and the transaction is complete (or after a bounded
        wait: the Prepare record is durable, so it completes anyway), so the producer's next transaction does not
        first meet CONCURRENT_TRANSACTIONS."""
        plan = self.coordinator.end_txn(self.now_ms(), transactional_id, producer_id, producer_epoch, commit)
        if plan.error != ErrorCode.NONE:
            return plan.error
        if plan.markers is None:
            return await self._run(plan)
        write, whole = self._start_ending(plan)  # not cancelled with the request
        code = await self._outcome(write)
        if code == ErrorCode.NONE:
            await asyncio.wait([whole], timeout=_END_TXN_WAIT_S)
        return code

    # ------------------------------------------------------------ describing (read-only: the admin APIs, verification)

    def describe(self, transactional_id: str) -> TxnMetadata | None:
        return self.coordinator.describe(transactional_id)

    def list_transactions(self, states: set[TxnState] | None, producer_ids: set[int], min_duration_ms: int,
                          id_pattern: re.Pattern | None) -> tuple[int, list[TxnMetadata]]:
        """(error code, the transactions matching the filters): COORDINATOR_LOAD_IN_PROGRESS before loading."""
        if not self._started:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, []
        return ErrorCode.NONE, self.coordinator.list_transactions(self.now_ms(), states, producer_ids,
                                                                  min_duration_ms, id_pattern)

    def verify_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                          partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return self.coordinator.verify_partitions(transactional_id, producer_id, producer_epoch, partitions)

    async def verify_for_produce(self, transactional_id: str, producer_id: int, producer_epoch: int,
                                 partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """A partition leader's check before it appends a producer's first transactional batch (KIP-890): the
        coordinator's answer for each partition, from this broker's coordinator when it has the transactional
        id, else (cluster mode) from the broker that does."""
        code = self.coordinator_error(transactional_id)
        if code == ErrorCode.NOT_COORDINATOR and self.remote is not None and not self.fenced():
            return await self.remote.verify(transactional_id, producer_id, producer_epoch, partitions)
        if code != ErrorCode.NONE:
            return dict.fromkeys(partitions, code)
        return self.verify_partitions(transactional_id, producer_id, producer_epoch, partitions)
