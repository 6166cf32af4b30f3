"""The replicas this broker holds: which it leads, their high watermarks, appends, reads, and the waits on them.

The manager follows the metadata image: `apply_image(old, new)` makes this broker the leader of every partition
the image says it leads (and will make it a follower of the rest, once cluster mode exists), and drops the
replicas the image no longer gives it. Handlers never ask a log directly whether it exists or who leads it.

Each replica has two watermarks (replication/watermark.py) that are the only ways requests wait: acks=all waits
until the high watermark passes its batch, a long-poll Fetch until the high watermark passes its fetch offset.
The high watermark is the ISR's lowest end (partition_state.py); standalone the ISR is this broker alone, so it
is the log end, or under durability=always the durable (fsynced) end: a consumer never reads a record that a
power cut can take back.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Callable, Protocol

from kafkalite.log.errors import StorageError
from kafkalite.log.manager import LogManager
from kafkalite.log.partition import AppendResult, PartitionLog
from kafkalite.metadata.image import MetadataImage, changed_partitions
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.record_batch import iter_batches
from kafkalite.replication.durability import FsyncThreads, Flusher
from kafkalite.replication.fetcher import FollowerFetcher
from kafkalite.replication.housekeeping import Housekeeping
from kafkalite.replication.partition_state import PartitionState
from kafkalite.replication.watermark import Watermark

log = logging.getLogger("kafkalite.replicas")


class NotServed(Exception):
    """This broker cannot serve the partition: `code` says why (unknown partition, not its leader)."""

    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(eq=False, slots=True)
class Replica:
    topic: str
    index: int
    log: PartitionLog
    state: PartitionState
    high_watermark: Watermark
    log_end: Watermark
    flusher: Flusher | None = field(default=None, repr=False)
    is_leader: bool = True
    leader_id: int = -1  # a follower's leader
    isr_change_pending: bool = False

    @property
    def leader_epoch(self) -> int:
        return self.state.leader_epoch

    def local_end(self) -> int:
        """The leader's own end as the high watermark counts it: durable when acks=all waits for fsync."""
        return _counted_end(self.log)


class IsrWriter(Protocol):
    """Cluster mode's port for a leader's ISR changes (a fenced compare-and-swap in the metadata store)."""

    async def change_isr(self, topic: str, index: int, leader_epoch: int, isr: tuple[int, ...]) -> bool: ...


class ReplicaManager:
    def __init__(self, node_id: int, logs: LogManager, housekeeping: Housekeeping, fsync_threads: FsyncThreads,
                 now_ms: Callable[[], int], *, fenced: Callable[[], bool] = lambda: False,
                 isr_writer: IsrWriter | None = None, replica_lag_max_ms: int = 30_000,
                 fetcher_options: dict | None = None):
        self.node_id = node_id
        self.logs = logs
        self.housekeeping = housekeeping
        self.fsync_threads = fsync_threads
        self.now_ms = now_ms
        self.fenced = fenced  # cluster mode: True once this broker's lease may be gone
        self.isr_writer = isr_writer
        self.replica_lag_max_ms = replica_lag_max_ms
        self.fetcher_options = fetcher_options or {}
        self.image = MetadataImage()
        self._replicas: dict[tuple[str, int], Replica] = {}
        self._fetchers: dict[int, FollowerFetcher] = {}
        self._background: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ following the metadata

    def apply_image(self, new: MetadataImage) -> None:
        old, self.image = self.image, new
        changed, gone = changed_partitions(old, new)
        for key in gone:
            replica = self._replicas.pop(key, None)
            if replica is not None:
                self._drop(replica)
        for topic, index in changed:
            info = new.partition(topic, index)
            if info is None or self.node_id not in info.replicas:
                replica = self._replicas.pop((topic, index), None)
                if replica is not None:
                    self._drop(replica)
                continue
            if info.leader == self.node_id:
                self._become_leader(topic, index, info)
            else:
                self._become_follower(topic, index, info)

    def _become_leader(self, topic: str, index: int, info) -> None:
        plog = self.logs.partition(topic, index)
        old = self._replicas.get((topic, index))
        if old is not None and old.is_leader and old.log is plog and old.state.leader_epoch == info.leader_epoch:
            old.state.isr = tuple(info.isr)  # only the ISR or the replicas changed
            old.state.replicas = tuple(info.replicas)
            old.isr_change_pending = False
            self._update_high_watermark(old)
            return
        if old is not None:
            self._drop(old)
        # (A partition with one replica, as every one standalone, is not worth a line per start-up.)
        log.log(logging.INFO if len(info.replicas) > 1 else logging.DEBUG, "%s-%d: leader at epoch %d, ISR %s",
                topic, index, info.leader_epoch, list(info.isr))
        plog.high_watermark_follows_log_end = False  # the replication layer moves it
        if info.leader_epoch > 0 or plog.log_end_offset > 0:  # (a new, empty log records epoch 0 on its first append)
            plog.assign_leader_epoch(info.leader_epoch)
        start_hw = max(plog.log_start_offset, min(plog.high_watermark, _counted_end(plog)))
        state = PartitionState.leader(self.node_id, info.replicas, info.isr, info.leader_epoch, start_hw,
                                      self.now_ms())
        replica = Replica(topic, index, plog, state, Watermark(start_hw), Watermark(plog.log_end_offset))
        replica.flusher = Flusher(
            lambda: plog.flush(), lambda: plog.log_end_offset, self.fsync_threads.run,
            on_durable=lambda _end, r=replica: self._update_high_watermark(r),
            on_error=lambda e, r=replica: self._failed(r, e),
        )
        self._replicas[(topic, index)] = replica
        self._update_high_watermark(replica)
        if replica.local_end() < plog.log_end_offset:
            replica.flusher.request()  # recovered records not yet known durable (an unclean stop)

    def _become_follower(self, topic: str, index: int, info) -> None:
        plog = self.logs.partition(topic, index)
        old = self._replicas.get((topic, index))
        if (old is not None and not old.is_leader and old.log is plog and old.leader_epoch == info.leader_epoch
                and old.leader_id == info.leader):
            return
        if old is not None:
            self._drop(old)
        plog.high_watermark_follows_log_end = False
        state = PartitionState(self.node_id, tuple(info.replicas), tuple(info.isr), info.leader_epoch,
                               min(plog.high_watermark, plog.log_end_offset))
        replica = Replica(topic, index, plog, state, Watermark(state.high_watermark), Watermark(plog.log_end_offset),
                          is_leader=False, leader_id=info.leader)
        self._replicas[(topic, index)] = replica
        leader = self.image.brokers.get(info.leader)
        if leader is None:
            log.info("%s-%d: follower of broker %d, which is offline", topic, index, info.leader)
            return
        fetcher = self._fetchers.get(leader.node_id)
        if fetcher is not None and fetcher.leader != leader:  # the leader moved to another address
            self._spawn(fetcher.stop())
            fetcher = None
        if fetcher is None:
            fetcher = self._fetchers[leader.node_id] = FollowerFetcher(self, leader, **self.fetcher_options)
        fetcher.add(replica)
        log.info("%s-%d: follower of broker %d at epoch %d", topic, index, info.leader, info.leader_epoch)

    def follower_progressed(self, replica: Replica, leader_high_watermark: int) -> None:
        """After a fetch: a follower's high watermark is min(the leader's, its own log end)."""
        hw = max(replica.log.log_start_offset, min(leader_high_watermark, replica.log.log_end_offset))
        replica.state.high_watermark = hw
        replica.log.set_high_watermark(hw)
        replica.log_end.advance(replica.log.log_end_offset)
        replica.high_watermark.advance(hw)

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop(self) -> None:
        for fetcher in list(self._fetchers.values()):
            await fetcher.stop()
        self._fetchers.clear()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _drop(self, replica: Replica) -> None:
        replica.high_watermark.close()
        replica.log_end.close()
        if not replica.is_leader:
            fetcher = self._fetchers.get(replica.leader_id)
            if fetcher is not None:
                fetcher.remove(replica.topic, replica.index)

    def _failed(self, replica: Replica, error: BaseException) -> None:
        log.error("%s-%d is offline: %s", replica.topic, replica.index, error)
        if not isinstance(error, StorageError):
            error = StorageError(str(error))
        replica.high_watermark.fail(error)

    def _update_high_watermark(self, replica: Replica) -> None:
        if replica.state.advance(replica.local_end()):
            hw = replica.state.high_watermark
            replica.log.set_high_watermark(hw)
            replica.high_watermark.advance(hw)

    # ------------------------------------------------------------------ lookups

    def replica(self, topic: str, index: int) -> Replica | None:
        """The local replica, whatever its role, or None."""
        return self._replicas.get((topic, index))

    def leader(self, topic: str, index: int) -> Replica:
        """The local replica that leads the partition; raises NotServed otherwise."""
        replica = self._replicas.get((topic, index))
        if replica is not None and replica.is_leader and not replica.log.closed:
            if self.fenced():
                raise NotServed(ErrorCode.NOT_LEADER_OR_FOLLOWER,
                                f"broker {self.node_id} lost its session with the cluster and leads nothing now")
            return replica
        info = self.image.partition(topic, index)
        if info is None:
            raise NotServed(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"{topic}-{index} does not exist")
        raise NotServed(ErrorCode.NOT_LEADER_OR_FOLLOWER, f"broker {self.node_id} does not lead {topic}-{index}")

    def leaders(self) -> list[Replica]:
        return [r for r in self._replicas.values() if r.is_leader]

    def local_replicas(self) -> list[Replica]:
        return list(self._replicas.values())

    # ------------------------------------------------------------------ writes

    async def writable_leader(self, topic: str, index: int) -> Replica:
        """The leader replica, once housekeeping lets writers through (see Housekeeping.wait_writable). The
        caller must append before its next await."""
        replica = self.leader(topic, index)
        if await self.housekeeping.wait_writable(replica.log):
            replica = self.leader(topic, index)  # deleted or moved while we waited?
        return replica

    def appended(self, replica: Replica, result: AppendResult) -> None:
        """After an append to a leader: wake log-end waiters, move or schedule the high watermark."""
        replica.log_end.advance(replica.log.log_end_offset)
        if replica.log.config.acks_all_waits_for_fsync:
            replica.flusher.request()
        else:
            self._update_high_watermark(replica)

    async def append(self, topic: str, index: int, batch, acks: int = 1,
                     verification_guard: object | None = None) -> tuple[Replica, AppendResult]:
        """Append one validated batch to the partition this broker leads (raises NotServed, LogError). acks=all
        is refused before anything is written when the ISR is smaller than min.insync.replicas."""
        replica = await self.writable_leader(topic, index)
        if acks == -1 and len(replica.state.isr) < replica.log.config.min_insync_replicas:
            raise NotServed(ErrorCode.NOT_ENOUGH_REPLICAS,
                            f"{topic}-{index} has {len(replica.state.isr)} in-sync replica(s), fewer than its "
                            f"min.insync.replicas {replica.log.config.min_insync_replicas}")
        result = replica.log.append(batch, leader_epoch=replica.leader_epoch, verification_guard=verification_guard)
        self.appended(replica, result)
        return replica, result

    def replicated(self, replica: Replica, next_offset: int):
        """A future done once the high watermark reaches `next_offset`: acks=all's condition."""
        return replica.high_watermark.reached(next_offset)

    def acknowledgement_error(self, replica: Replica) -> NotServed | None:
        """Why an acks=all write whose high watermark was reached may still not be acknowledged: this broker
        lost its lease meanwhile, or the ISR shrank below min.insync.replicas (as Kafka:
        NOT_ENOUGH_REPLICAS_AFTER_APPEND)."""
        if self.fenced() or not replica.is_leader:
            return NotServed(ErrorCode.NOT_LEADER_OR_FOLLOWER, f"broker {self.node_id} no longer leads "
                             f"{replica.topic}-{replica.index}")
        if len(replica.state.isr) < replica.log.config.min_insync_replicas:
            return NotServed(ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                             f"the ISR of {replica.topic}-{replica.index} shrank below min.insync.replicas")
        return None

    # ------------------------------------------------------------------ followers of our leaders

    def follower_fetched(self, replica: Replica, follower: int, fetch_offset: int) -> None:
        """A follower fetched from `fetch_offset`: everything below it is on that follower (fsynced there under
        durability=always). Moves the high watermark, and asks for the follower's return to the ISR once it
        has caught up."""
        replica.state.follower_fetched(follower, fetch_offset, replica.log.log_end_offset, self.now_ms())
        self._update_high_watermark(replica)
        if replica.isr_change_pending or self.isr_writer is None or follower in replica.state.isr:
            return
        # Only the follower fetching now may rejoin (one that stopped fetching is not caught up, whatever its last
        # fetch said), and only a registered broker (Kafka's KIP-841): one that lost its lease may still fetch, and
        # the controller would take it out again at once, round and round.
        if (follower in replica.state.followers_to_add() and follower in self.image.brokers
                and fetch_offset >= epoch_start_offset(replica)):
            self._propose_isr(replica, tuple(r for r in replica.state.replicas
                                              if r in replica.state.isr or r == follower))

    def check_isr(self) -> None:
        """Take followers that fell behind for replica.lag.time.max.ms out of the ISR (call now and then)."""
        if self.isr_writer is None or self.fenced():
            return
        now = self.now_ms()
        for replica in self.leaders():
            if replica.isr_change_pending:
                continue
            lagging = replica.state.lagging_followers(now, self.replica_lag_max_ms)
            if lagging:
                log.info("%s-%d: followers %s fell behind; leaving the ISR", replica.topic, replica.index, lagging)
                self._propose_isr(replica, tuple(r for r in replica.state.isr if r not in lagging))

    def _propose_isr(self, replica: Replica, isr: tuple[int, ...]) -> None:
        replica.isr_change_pending = True

        async def write() -> None:
            try:
                if not await self.isr_writer.change_isr(replica.topic, replica.index, replica.leader_epoch, isr):
                    log.info("%s-%d: ISR change to %s refused; the metadata moved on", replica.topic,
                             replica.index, list(isr))
            except Exception as e:  # the store is down: try again on the next check
                log.warning("%s-%d: ISR change to %s failed: %s", replica.topic, replica.index, list(isr), e)
            finally:
                replica.isr_change_pending = False  # (the new image, when it comes, updates the ISR itself)

        self._spawn(write())

    def read_for_follower(self, replica: Replica, offset: int, max_bytes: int) -> list:
        """A follower's read: whole batches from `offset` up to the log end."""
        return replica.log.read(offset, max_bytes)

    async def write_marker(self, topic: str, index: int, batch: bytes) -> None:
        """Append a transaction marker (a control batch the coordinator built) and wait until it is committed.
        LookupError when the partition no longer exists."""
        try:
            await self.append_internal(topic, index, batch)
        except NotServed as e:
            if e.code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                raise LookupError(e.message) from None
            raise

    async def append_internal(self, topic: str, index: int, batch: bytes | bytearray, acks: int = 1) -> int:
        """Append a batch the broker built itself (group offsets) and wait until it is committed; returns its
        base offset. acks=-1 (the transaction log) also holds to min.insync.replicas, as a produce request's."""
        replica, result = await self.append(topic, index, memoryview(bytearray(batch)), acks)
        if not await self.replicated(replica, result.last_offset + 1):
            raise StorageError(f"{topic}-{index} went away before the append was committed")
        if acks == -1 and (error := self.acknowledgement_error(replica)) is not None:
            raise error
        return result.base_offset

    # ------------------------------------------------------------------ reads

    def read(self, replica: Replica, offset: int, max_bytes: int) -> list:
        """A consumer's read: whole batches from `offset`, none at or beyond the high watermark."""
        return replica.log.read(offset, max_bytes, max_offset=replica.state.high_watermark)

    def last_stable_offset(self, replica: Replica) -> int:
        """The high watermark, or the first offset of the oldest transaction still open below it: what a
        read_committed consumer may read up to."""
        unstable = replica.log.first_unstable_offset()
        high_watermark = replica.state.high_watermark
        return high_watermark if unstable is None else min(unstable, high_watermark)

    def read_committed(self, replica: Replica, offset: int, max_bytes: int) -> tuple[list, list]:
        """A read_committed consumer's read: whole batches from `offset` below the last stable offset, and the
        aborted transactions (producer id, first offset) that overlap what is returned."""
        lso = self.last_stable_offset(replica)
        chunks = replica.log.read(offset, max_bytes, max_offset=lso)
        if not chunks:
            return [], []
        end = _next_offset_after(chunks)
        return chunks, [(a.producer_id, a.first_offset) for a in replica.log.aborted_transactions(offset, end)]

    def notify_after(self, replica: Replica, offset: int, future: asyncio.Future, follower: bool) -> None:
        """Complete `future` once a reader at `offset` has more to read: a consumer once the high watermark passes
        it, a follower once the log end does. One future may wait on many partitions (a long poll's)."""
        (replica.log_end if follower else replica.high_watermark).notify(offset + 1, future)

    def moved_after(self, replica: Replica, offset: int, follower: bool) -> bool:
        """Whether a reader at `offset` has more to read now (or the replica went away or failed)."""
        return (replica.log_end if follower else replica.high_watermark).passed(offset + 1)

    async def housekeeping_done_with(self, topic: str) -> None:
        """Before deleting a topic: wait until housekeeping works on none of its logs."""
        await self.housekeeping.wait_done_with([r.log for (t, _), r in self._replicas.items() if t == topic])

    # ------------------------------------------------------------------ flushing

    async def flush_due(self) -> None:
        """flush.ms / flush.messages: fsync the logs that ask for it (whatever the durability policy)."""
        now = self.now_ms()
        for replica in list(self._replicas.values()):
            if replica.log.closed or not replica.log.flush_due(now):
                continue
            if replica.flusher is None:  # a follower: its fetcher fsyncs under durability=always; this is the rest
                await self.fsync_threads.run(replica.log.flush)
            elif not replica.flusher.busy:
                replica.flusher.request()


def _next_offset_after(chunks: list) -> int:
    """The offset after the last batch in `chunks` (whole v2 batches)."""
    last = chunks[-1]
    end = 0
    for batch in iter_batches(last):
        end = batch.next_offset
    return end


def _counted_end(plog: PartitionLog) -> int:
    """A log's end as the high watermark counts it: the fsynced end under durability=always, else the log end."""
    return plog.flushed_offset if plog.config.acks_all_waits_for_fsync else plog.log_end_offset


def epoch_start_offset(replica: Replica) -> int:
    """Where the leader's current epoch starts: a follower rejoins the ISR only once it has reached it, and
    ListOffsets answers a consumer only once the high watermark has."""
    for epoch, start in reversed(replica.log.leader_epochs):
        if epoch == replica.leader_epoch:
            return start
    return 0
