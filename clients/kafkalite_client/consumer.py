"""The consumer: fetches in the background from each partition's leader, hands records out by pull
(`async for`, `getmany`) or push (`run(each_message=...)`), and commits what was handled.

Two positions per partition:
  position   the next offset to hand to the caller (moves when records are handed out);
  consumed   the offset up to which the caller has finished with records, which is what auto-commit
             commits. It catches up with `position` when the caller asks for more (the records before
             were handled), when an `each_message` handler returns, or on `commit()`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable

from kafkalite.protocol.api_keys import ApiKey
from kafkalite.protocol.errors import DecodeError, ErrorCode
from kafkalite.protocol.record_batch import RecordBatch, iter_batches_lenient

from kafkalite_client._aio import wait_event
from kafkalite_client.assignors import make_assignors
from kafkalite_client.cluster import Cluster
from kafkalite_client.errors import (
    ClientClosedError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    OffsetOutOfRangeError,
    RecordDeserializationError,
    error_class,
)
from kafkalite_client.fetched import decode_batch
from kafkalite_client.group import GroupCoordinatorClient, fetch_committed
from kafkalite_client.offsets import EARLIEST, ISOLATION_LEVELS, LATEST, READ_COMMITTED, list_offsets
from kafkalite_client.records import ConsumerRecord, OffsetAndMetadata, TopicPartition, to_offset_and_metadata
from kafkalite_client.retry import RetryPolicy, RetryRouter
from kafkalite_client.transaction import ConsumerGroupMetadata

log = logging.getLogger(__name__)

FETCH = ApiKey.FETCH
_RESET = {"earliest": EARLIEST, "latest": LATEST, "none": None}
_REFRESH_ON = {ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
               ErrorCode.LEADER_NOT_AVAILABLE, ErrorCode.FENCED_LEADER_EPOCH, ErrorCode.UNKNOWN_LEADER_EPOCH,
               ErrorCode.KAFKA_STORAGE_ERROR, ErrorCode.UNKNOWN_TOPIC_ID}


@dataclass
class _PartitionState:
    position: int | None = None  # next offset to hand out; None until resolved
    fetch_offset: int | None = None  # next offset to fetch
    consumed: int | None = None  # handled up to here (exclusive): what auto-commit commits
    committed: int | None = None  # last offset committed by this consumer
    high_watermark: int | None = None
    last_stable_offset: int | None = None
    log_start_offset: int | None = None
    paused: bool = False
    records: collections.deque = field(default_factory=collections.deque)
    epoch: int = 0  # bumped on seek/reset: responses to older fetches are dropped
    seeks: int = 0  # bumped by each seek the caller made: a reset or seek that began before it is dropped
    error: Exception | None = None  # raised to the caller at the next getmany (e.g. out of range, reset none)


class Consumer:
    """Reads records: pull with `getmany()`, `getone()` or `async for`, or push with `run(each_message)`.
    Subscribe with a group (`Consumer("topic", group_id="g")`, `subscribe(pattern=...)`) or `assign()`
    partitions yourself. Use as `async with Consumer(...) as c:`, or `start()` and `close()`.

    Arguments, with their defaults (aiokafka's and the Java client's names and meanings):
      *topics: topics to subscribe to (needs group_id); or call subscribe() or assign() later.
      bootstrap_servers='127.0.0.1:9092': 'host:port[,host:port...]' or a list of them.
      group_id=None: the consumer group; without one, assign() partitions and commit nothing.
      client_id='kafkalite-consumer': the client id the broker logs and group descriptions show.
      group_instance_id=None: a static member id (KIP-345): a restart within the session keeps the assignment.
      auto_offset_reset='latest': where to start without a committed offset: 'earliest', 'latest', or 'none'
        (getmany raises OffsetOutOfRangeError).
      enable_auto_commit=True: commit handled records every auto_commit_interval_ms, on revoke and on close.
      auto_commit_interval_ms=5000: how often auto-commit runs.
      session_timeout_ms=10000: the group drops a member whose heartbeats stop this long.
      heartbeat_interval_ms=3000: how often the member heartbeats (in the background, never blocked by you).
      rebalance_timeout_ms=60000: how long the group waits for members to rejoin in a rebalance.
      partition_assignment_strategy=('range', 'roundrobin'): assignor names ('range', 'roundrobin',
        'cooperative-sticky') or Assignor objects, in order of preference.
      fetch_max_wait_ms=500: how long the broker may hold a fetch waiting for fetch_min_bytes.
      fetch_min_bytes=1: the broker answers a fetch once it has this many bytes.
      fetch_max_bytes=52428800: the most bytes one fetch returns (50 MiB).
      max_partition_fetch_bytes=1048576: the most bytes one fetch returns per partition.
      max_poll_records=500: the most records one getmany returns (and buffered per partition).
      request_timeout_ms=30000: how long to wait for a broker's answer.
      retry_backoff_ms=100: the wait before retrying a failed request.
      metadata_check_interval_ms=5000: how often a group member checks for new partitions and, with a
        pattern, for topics that start to match.
      retry=None: a RetryPolicy: run() parks records whose handler raised on `<topic>.retry`, then `<topic>.dlq`.
      on_assign=None: `async def on_assign(partitions)`, called with partitions the group gave this member.
      on_revoke=None: `async def on_revoke(partitions)`, called before partitions go (after their commit).
      key_deserializer=None: a callable turning each key's bytes (or None) into what you read, as aiokafka's.
      value_deserializer=None: the same for values; one that raises makes getmany raise
        RecordDeserializationError (the record stays next; seek past it), and run() treat it as a failure.
      exclude_internal_topics=True: a pattern never matches internal topics such as __consumer_offsets.
      isolation_level='read_uncommitted': 'read_committed' reads only committed transactions' records (and
        records written outside transactions), up to the first open transaction; 'latest' and lag count to
        there too. 'read_uncommitted' reads every record, aborted ones included.
    """

    def __init__(
        self,
        *topics: str,
        bootstrap_servers="127.0.0.1:9092",
        group_id: str | None = None,
        client_id: str = "kafkalite-consumer",
        group_instance_id: str | None = None,
        auto_offset_reset: str = "latest",
        enable_auto_commit: bool = True,
        auto_commit_interval_ms: int = 5000,
        session_timeout_ms: int = 10000,
        heartbeat_interval_ms: int = 3000,
        rebalance_timeout_ms: int = 60000,
        partition_assignment_strategy=("range", "roundrobin"),
        fetch_max_wait_ms: int = 500,
        fetch_min_bytes: int = 1,
        fetch_max_bytes: int = 52428800,
        max_partition_fetch_bytes: int = 1048576,
        max_poll_records: int = 500,
        request_timeout_ms: int = 30000,
        retry_backoff_ms: int = 100,
        metadata_check_interval_ms: int = 5000,
        retry: RetryPolicy | None = None,
        on_assign: Callable[[set[TopicPartition]], Awaitable[None]] | None = None,
        on_revoke: Callable[[set[TopicPartition]], Awaitable[None]] | None = None,
        key_deserializer: Callable[[bytes | None], Any] | None = None,
        value_deserializer: Callable[[bytes | None], Any] | None = None,
        exclude_internal_topics: bool = True,
        isolation_level: str = "read_uncommitted",
    ):
        if isolation_level not in ISOLATION_LEVELS:
            raise ValueError(f"isolation_level must be read_uncommitted or read_committed, not {isolation_level!r}")
        self.isolation_level = isolation_level
        self._isolation = ISOLATION_LEVELS[isolation_level]
        if auto_offset_reset not in _RESET:
            raise ValueError(f"auto_offset_reset must be earliest, latest or none, not {auto_offset_reset!r}")
        self.auto_offset_reset = auto_offset_reset
        self.group_id = group_id
        self.enable_auto_commit = enable_auto_commit and group_id is not None
        self.auto_commit_interval = auto_commit_interval_ms / 1000
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.fetch_min_bytes = fetch_min_bytes
        self.fetch_max_bytes = fetch_max_bytes
        self.max_partition_fetch_bytes = max_partition_fetch_bytes
        self.max_poll_records = max_poll_records
        self.request_timeout = request_timeout_ms / 1000
        self.retry_backoff = retry_backoff_ms / 1000
        self.cluster = Cluster(bootstrap_servers, client_id=client_id, request_timeout=self.request_timeout)
        self.retry_policy = retry
        self._bootstrap_servers = bootstrap_servers
        self._user_on_assign = on_assign
        self._user_on_revoke = on_revoke
        self.key_deserializer = key_deserializer
        self.value_deserializer = value_deserializer
        self.exclude_internal_topics = exclude_internal_topics
        self._pattern: re.Pattern | None = None

        self._states: dict[TopicPartition, _PartitionState] = {}
        self._subscription: set[str] | None = None
        self._manual = False
        self._records_ready = asyncio.Event()
        self._fetch_wakeup = asyncio.Event()
        self._fetching_nodes: set[int] = set()
        self._tasks: set[asyncio.Task] = set()
        self._resolving: set[TopicPartition] = set()
        self._iter_pending: collections.deque[ConsumerRecord] = collections.deque()
        self._iter_last: ConsumerRecord | None = None
        self._started = False
        self._closed = False
        self._stopping = asyncio.Event()
        self._retry_router: RetryRouter | None = None

        self.group: GroupCoordinatorClient | None = None
        if group_id is not None:
            self.group = GroupCoordinatorClient(
                self.cluster, group_id, assignors=make_assignors(partition_assignment_strategy),
                session_timeout_ms=session_timeout_ms, rebalance_timeout_ms=rebalance_timeout_ms,
                heartbeat_interval_ms=heartbeat_interval_ms, group_instance_id=group_instance_id,
                retry_backoff_ms=retry_backoff_ms, metadata_check_interval_ms=metadata_check_interval_ms)
            self.group.owned = lambda: set(self._states)
            self.group.on_assign = self._on_assign
            self.group.on_revoke = self._on_revoke
        if topics:
            self.subscribe(topics)

    # Lifecycle ------------------------------------------------------------------------------

    async def start(self) -> "Consumer":
        if self._started:
            return self
        if self._closed:
            raise ClientClosedError("the consumer is closed")
        self._started = True
        await self.cluster.refresh()
        if self._pattern is not None:
            self._subscription = self._matching_topics()
        if self.retry_policy is not None:
            self._retry_router = RetryRouter(self.retry_policy, self._bootstrap_servers, self.cluster)
            if self._subscription:
                await self._retry_router.prepare_topics(self._subscription)
                self._subscription |= {self.retry_policy.retry_topic(t) for t in self._subscription}
        self._spawn(self._fetch_loop())
        if self.enable_auto_commit:
            self._spawn(self._auto_commit_loop())
        if self._subscription is not None and self.group is not None:
            self.group.topics = set(self._subscription)
            self.group.start()
        return self

    async def __aenter__(self) -> "Consumer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def stop(self) -> None:
        """Make a running `run()` and `async for` loop end after the message in hand."""
        self._stopping.set()
        self._records_ready.set()

    async def close(self) -> None:
        """Commit what was handled (with auto-commit), leave the group and close connections."""
        if self._closed:
            return
        self.stop()
        try:
            if self._started and self.enable_auto_commit and self._group_stable():
                self._mark_iterated_consumed()
                try:
                    await self._commit_consumed()
                except (KafkaError, KafkaConnectionError, KafkaTimeoutError) as e:
                    log.warning("final commit failed: %s", e)
            if self.group is not None:
                await self.group.stop(leave=self._started)
        finally:
            self._closed = True
            for task in list(self._tasks):
                task.cancel()
            if self._retry_router is not None:
                await self._retry_router.close()
            self.cluster.close()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _group_stable(self) -> bool:
        return self.group is not None and self.group.stable.is_set() and self.group.fatal_error is None

    # Subscription and assignment -------------------------------------------------------------

    def subscribe(self, topics: Iterable[str] = (), pattern: str | re.Pattern | None = None) -> None:
        """Join the group to read these topics, or every topic whose name matches `pattern` (a regular
        expression matched from the start of the name, as aiokafka's; end it with `$` to match whole names).
        A pattern is matched again at each metadata check (metadata_check_interval_ms): topics that start
        to match join the subscription. Internal topics match only with exclude_internal_topics=False."""
        if self.group is None:
            raise ValueError("subscribe() needs a group_id; use assign() without a group")
        if self._manual:
            raise ValueError("this consumer uses assign(); it cannot also subscribe()")
        topics = {topics} if isinstance(topics, str) else set(topics)
        if pattern is not None:
            if topics:
                raise ValueError("give subscribe() topics or a pattern, not both")
            if self.retry_policy is not None:
                raise ValueError("subscribe(pattern=...) cannot be combined with retry=; subscribe to topics by name")
            self._pattern = re.compile(pattern)
            self.group.topics_source = self._pattern_topics
            topics = self._matching_topics()
        else:
            self._pattern = None
            self.group.topics_source = None
        if self.retry_policy is not None and self._started:
            topics |= {self.retry_policy.retry_topic(t) for t in topics}
        self._subscription = topics
        if self._started:
            self.group.topics = set(topics)
            self.group.start()
            self.group.request_rejoin()

    def subscription(self) -> set[str]:
        """The subscribed topics (with a pattern: those it matched at the last metadata check)."""
        return set(self._subscription or ())

    def _matching_topics(self) -> set[str]:
        """The known topics the subscribed pattern matches."""
        return {name for name, info in self.cluster.topics.items()
                if self._pattern.match(name) and not (info.is_internal and self.exclude_internal_topics)}

    async def _pattern_topics(self) -> set[str]:
        await self.cluster.refresh()
        self._subscription = self._matching_topics()
        return set(self._subscription)

    def assign(self, partitions: Iterable[TopicPartition | tuple[str, int]]) -> None:
        """Read these partitions, without group membership (offsets still commit to group_id if given)."""
        if self._subscription is not None:
            raise ValueError("this consumer subscribed with a group; it cannot also assign()")
        self._manual = True
        wanted = {TopicPartition(*tp) for tp in partitions}
        for tp in list(self._states):
            if tp not in wanted:
                del self._states[tp]
        for tp in wanted:
            self._states.setdefault(tp, _PartitionState())
        self._fetch_wakeup.set()

    def assignment(self) -> set[TopicPartition]:
        return set(self._states)

    async def _on_assign(self, added: set[TopicPartition]) -> None:
        for tp in added:
            self._states.setdefault(tp, _PartitionState())
        log.info("group %s: assigned %s", self.group_id, sorted(added))
        if added:
            await self._resolve_positions(added)
        self._fetch_wakeup.set()
        if self._user_on_assign is not None:
            await self._user_on_assign(set(added))

    async def _on_revoke(self, revoked: set[TopicPartition]) -> None:
        if self.enable_auto_commit:
            try:
                await self._commit_consumed(only=revoked)
            except (KafkaError, KafkaConnectionError, KafkaTimeoutError) as e:
                log.warning("commit before revoking %s failed: %s", sorted(revoked), e)
        if self._user_on_revoke is not None:
            await self._user_on_revoke(set(revoked))
        for tp in revoked:
            self._states.pop(tp, None)
        self._iter_pending = collections.deque(r for r in self._iter_pending if r.topic_partition not in revoked)

    async def _wait_for_assignment(self, deadline: float | None) -> None:
        if self.group is None or self._manual:
            return
        loop = asyncio.get_running_loop()
        while not self._group_stable():
            if self.group.fatal_error is not None:
                raise self.group.fatal_error
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            if timeout == 0.0 or self._stopping.is_set():
                return
            if not await wait_event(self.group.stable, timeout):
                return

    # Positions -------------------------------------------------------------------------------

    # A position found in the background (committed offset, auto_offset_reset) applies only while the
    # partition still has none and the caller has not seeked since the lookup began: a seek always wins.
    # A seek's own lookup (seek_to_*) gives way only to a later seek.

    def _seek_token(self, tp: TopicPartition) -> tuple[_PartitionState, int] | None:
        st = self._states.get(tp)
        return None if st is None else (st, st.seeks)

    def _no_seek_since(self, tp: TopicPartition, token) -> bool:
        st = self._states.get(tp)
        return token is not None and st is token[0] and st.seeks == token[1]

    def _seek(self, tp: TopicPartition, offset: int) -> None:
        self._set_position(tp, offset)
        self._states[tp].seeks += 1

    async def _resolve_positions(self, partitions: Iterable[TopicPartition]) -> None:
        """Committed offsets first (when there is a group), then auto_offset_reset."""
        tokens = {tp: self._seek_token(tp) for tp in partitions
                  if tp in self._states and self._states[tp].position is None}
        if not tokens:
            return
        committed = {}
        if self.group_id is not None:
            committed = await fetch_committed(self.cluster, self.group_id, list(tokens))
        reset = {}
        for tp, token in tokens.items():
            if not self._still_unresolved(tp, token):
                continue
            offset = committed.get(tp, -1)
            if offset >= 0:
                self._set_position(tp, int(offset))
                self._states[tp].committed = offset
            else:
                reset[tp] = token
        if reset:
            await self._reset_positions(reset)

    def _still_unresolved(self, tp: TopicPartition, token) -> bool:
        return self._no_seek_since(tp, token) and self._states[tp].position is None

    async def _reset_positions(self, tokens: dict[TopicPartition, tuple[_PartitionState, int]]) -> None:
        """Apply auto_offset_reset to these partitions (each with its seek token from before the lookup)."""
        target = _RESET[self.auto_offset_reset]
        if target is None:
            for tp, token in tokens.items():
                if self._still_unresolved(tp, token):
                    self._states[tp].error = OffsetOutOfRangeError(
                        f"{tp.topic}-{tp.partition} has no committed offset and auto_offset_reset is 'none'")
            self._records_ready.set()
            return
        found = await list_offsets(self.cluster, {tp: target for tp in tokens}, isolation_level=self._isolation)
        for tp, answer in found.items():
            if answer is not None and self._still_unresolved(tp, tokens[tp]):
                self._set_position(tp, answer[0])

    def _set_position(self, tp: TopicPartition, offset: int) -> None:
        st = self._states.get(tp)
        if st is None:
            return
        st.position = st.fetch_offset = st.consumed = offset
        st.records.clear()
        st.error = None
        st.epoch += 1
        self._iter_pending = collections.deque(r for r in self._iter_pending if r.topic_partition != tp)
        self._fetch_wakeup.set()

    def _state(self, tp) -> _PartitionState:
        tp = TopicPartition(*tp)
        st = self._states.get(tp)
        if st is None:
            raise ValueError(f"{tp.topic}-{tp.partition} is not assigned to this consumer")
        return st

    def seek(self, tp: TopicPartition | tuple[str, int], offset: int) -> None:
        """Read this partition from `offset` next (it wins over an offset reset still under way)."""
        self._state(tp)
        self._seek(TopicPartition(*tp), int(offset))

    async def seek_to_beginning(self, *partitions) -> None:
        """Read these partitions (default: all assigned) from their first offset."""
        await self._seek_to(EARLIEST, partitions)

    async def seek_to_end(self, *partitions) -> None:
        """Read only records written from now on to these partitions (default: all assigned)."""
        await self._seek_to(LATEST, partitions)

    def _partitions(self, partitions) -> list[TopicPartition]:
        tps = [TopicPartition(*tp) for tp in partitions] or list(self._states)
        for tp in tps:
            self._state(tp)
        return tps

    async def _seek_to(self, target: int, partitions) -> None:
        await self.start()
        tps = self._partitions(partitions)
        tokens = {tp: self._seek_token(tp) for tp in tps}
        found = await list_offsets(self.cluster, {tp: target for tp in tps}, isolation_level=self._isolation)
        for tp, answer in found.items():
            if answer is not None and self._no_seek_since(tp, tokens[tp]):
                self._seek(tp, answer[0])

    async def seek_to_committed(self, *partitions) -> dict[TopicPartition, OffsetAndMetadata | None]:
        """Read these partitions (default: all assigned) from the group's committed offsets; returns them
        (None where nothing is committed: that partition's position stays as it is)."""
        if self.group_id is None:
            raise ValueError("seek_to_committed() needs a group_id")
        await self.start()
        tps = self._partitions(partitions)
        tokens = {tp: self._seek_token(tp) for tp in tps}
        committed = await fetch_committed(self.cluster, self.group_id, tps)
        out: dict[TopicPartition, OffsetAndMetadata | None] = {}
        for tp in tps:
            offset = committed.get(tp)
            out[tp] = offset if offset is not None and offset >= 0 else None
            if out[tp] is not None and self._no_seek_since(tp, tokens[tp]):
                self._seek(tp, int(offset))
                self._states[tp].committed = offset
        return out

    async def offsets_for_times(self, timestamps: dict) -> dict[TopicPartition, tuple[int, int] | None]:
        """{partition: ms timestamp} -> {partition: (offset, timestamp) of the first record at or after it, or None}."""
        await self.start()
        return await list_offsets(self.cluster, {TopicPartition(*tp): ts for tp, ts in timestamps.items()},
                                  isolation_level=self._isolation)

    async def beginning_offsets(self, partitions) -> dict[TopicPartition, int]:
        await self.start()
        found = await list_offsets(self.cluster, {TopicPartition(*tp): EARLIEST for tp in partitions},
                                   isolation_level=self._isolation)
        return {tp: a[0] if a else 0 for tp, a in found.items()}

    async def end_offsets(self, partitions) -> dict[TopicPartition, int]:
        await self.start()
        found = await list_offsets(self.cluster, {TopicPartition(*tp): LATEST for tp in partitions},
                                   isolation_level=self._isolation)
        return {tp: a[0] if a else 0 for tp, a in found.items()}

    async def position(self, tp) -> int:
        st = self._state(tp)
        if st.position is None:
            await self.start()
            await self._resolve_positions([TopicPartition(*tp)])
        if st.error is not None:
            raise st.error
        return st.position

    async def committed(self, tp) -> OffsetAndMetadata | None:
        """The group's committed offset of this partition (by any member), with its metadata, or None.
        An OffsetAndMetadata is an int: it compares and counts as the offset."""
        if self.group_id is None:
            raise ValueError("committed() needs a group_id")
        await self.start()
        tp = TopicPartition(*tp)
        offset = (await fetch_committed(self.cluster, self.group_id, [tp])).get(tp, -1)
        return None if offset < 0 else offset

    def highwater(self, tp) -> int | None:
        """The partition's high watermark as of the last fetch."""
        return self._state(tp).high_watermark

    def last_stable_offset(self, tp) -> int | None:
        """The partition's last stable offset (below it no transaction is open) as of the last fetch."""
        return self._state(tp).last_stable_offset

    def lag(self, tp) -> int | None:
        """Records between the position and the high watermark (with read_committed, the last stable
        offset) as of the last fetch, or None if unknown."""
        st = self._state(tp)
        end = st.last_stable_offset if self._isolation == READ_COMMITTED else st.high_watermark
        if end is None or end < 0 or st.position is None:
            return None
        return max(0, end - st.position)

    def lags(self) -> dict[TopicPartition, int | None]:
        return {tp: self.lag(tp) for tp in self._states}

    def pause(self, *partitions) -> None:
        for tp in partitions:
            self._state(tp).paused = True

    def resume(self, *partitions) -> None:
        for tp in partitions:
            self._state(tp).paused = False
        self._fetch_wakeup.set()
        self._records_ready.set()

    def paused(self) -> set[TopicPartition]:
        return {tp for tp, st in self._states.items() if st.paused}

    def group_metadata(self) -> ConsumerGroupMetadata:
        """The group, generation and member id, for Producer.send_offsets_to_transaction."""
        if self.group_id is None:
            raise ValueError("group_metadata() needs a group_id")
        if self.group is None or self._manual:
            return ConsumerGroupMetadata(self.group_id)
        return ConsumerGroupMetadata(self.group_id, self.group.generation, self.group.member_id,
                                     self.group.group_instance_id)

    # Commits ---------------------------------------------------------------------------------

    async def commit(self, offsets: dict | None = None) -> None:
        """Commit `offsets` ({partition: next offset to read}), or by default the position of every assigned
        partition: everything handed out so far counts as handled. An offset may carry a metadata string:
        `{tp: OffsetAndMetadata(offset, "metadata")}` or `{tp: (offset, "metadata")}`."""
        if self.group_id is None:
            raise ValueError("commit() needs a group_id")
        await self.start()
        if offsets is None:
            offsets = {tp: st.position for tp, st in self._states.items() if st.position is not None}
            for tp, st in self._states.items():
                if st.position is not None:
                    st.consumed = st.position
        offsets = {TopicPartition(*tp): to_offset_and_metadata(o) for tp, o in offsets.items()}
        await self._commit(offsets)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.group is None:
            return
        await self.group.commit(offsets, as_member=not self._manual)
        for tp, offset in offsets.items():
            st = self._states.get(tp)
            if st is not None:
                st.committed = offset

    async def _commit_consumed(self, only: set[TopicPartition] | None = None) -> None:
        offsets = {tp: st.consumed for tp, st in self._states.items()
                   if st.consumed is not None and st.consumed != st.committed and (only is None or tp in only)}
        if offsets:
            await self._commit(offsets)

    async def _auto_commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self.auto_commit_interval)
            if not (self._group_stable() or self._manual):
                continue
            try:
                await self._commit_consumed()
            except (KafkaError, KafkaConnectionError, KafkaTimeoutError) as e:
                log.info("auto-commit failed: %s", e)

    def _mark_consumed(self, record: ConsumerRecord) -> None:
        st = self._states.get(record.topic_partition)
        if st is not None and (st.consumed is None or record.offset + 1 > st.consumed):
            st.consumed = record.offset + 1

    def _mark_iterated_consumed(self) -> None:
        if self._iter_last is not None:
            self._mark_consumed(self._iter_last)
            self._iter_last = None

    # Fetching -----------------------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        while True:
            self._fetch_wakeup.clear()
            unresolved = [tp for tp, st in self._states.items()
                          if st.position is None and st.error is None and tp not in self._resolving]
            if unresolved and (self._manual or self.group is None):
                self._spawn(self._resolve_in_background(unresolved))
            by_node: dict[int, list[TopicPartition]] = {}
            for tp, st in self._states.items():
                # Fetch ahead while the caller works through a short buffer: the broker prepares the next
                # response while this process decodes and hands out the last one.
                if st.paused or st.fetch_offset is None or len(st.records) >= self.max_poll_records \
                        or st.error is not None:
                    continue
                leader = self.cluster.leader(tp.topic, tp.partition)
                if leader < 0:
                    self._spawn(self._refresh_soon())
                    continue
                if leader not in self._fetching_nodes:
                    by_node.setdefault(leader, []).append(tp)
            for node, tps in by_node.items():
                self._fetching_nodes.add(node)
                self._spawn(self._fetch(node, tps))
            await self._fetch_wakeup.wait()

    async def _resolve_in_background(self, tps: list[TopicPartition]) -> None:
        self._resolving.update(tps)
        try:
            await self._resolve_positions(tps)
        except (KafkaError, KafkaConnectionError, KafkaTimeoutError) as e:
            log.warning("cannot resolve positions of %s: %s", tps, e)
            await asyncio.sleep(self.retry_backoff)
        finally:
            self._resolving.difference_update(tps)
            self._fetch_wakeup.set()

    async def _refresh_soon(self) -> None:
        await asyncio.sleep(self.retry_backoff)
        try:
            await self.cluster.refresh()
        except (KafkaError, KafkaConnectionError, KafkaTimeoutError) as e:
            log.info("metadata refresh failed: %s", e)
        self._fetch_wakeup.set()

    async def _fetch(self, node: int, tps: list[TopicPartition]) -> None:
        epochs = {}
        topics: dict[str, list[dict]] = {}
        for tp in tps:
            st = self._states[tp]
            epochs[tp] = (st.epoch, st.fetch_offset)
            topics.setdefault(tp.topic, []).append({
                "partition": tp.partition, "current_leader_epoch": -1, "fetch_offset": st.fetch_offset,
                "last_fetched_epoch": -1, "log_start_offset": -1,
                "partition_max_bytes": self.max_partition_fetch_bytes})
        body = {"replica_id": -1, "max_wait_ms": self.fetch_max_wait_ms, "min_bytes": self.fetch_min_bytes,
                "max_bytes": self.fetch_max_bytes, "isolation_level": self._isolation,
                "session_id": 0, "session_epoch": -1,
                "topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()],
                "forgotten_topics_data": [], "rack_id": ""}
        refresh = False
        try:
            conn = await self.cluster.connection(node)
            response = await conn.request(FETCH, body, timeout=self.request_timeout + self.fetch_max_wait_ms / 1000)
            if response["error_code"]:
                raise error_class(response["error_code"])("fetch refused")
            got_records = False
            reset: list[TopicPartition] = []
            for t in response["responses"]:
                for p in t["partitions"]:
                    tp = TopicPartition(t["topic"], p["partition_index"])
                    st = self._states.get(tp)
                    if st is None or (st.epoch, st.fetch_offset) != epochs.get(tp):
                        continue  # revoked, or seeked since the request went out
                    code = p["error_code"]
                    if code == ErrorCode.OFFSET_OUT_OF_RANGE:
                        reset.append(tp)
                        continue
                    if code:
                        refresh |= code in _REFRESH_ON
                        log.info("fetch %s-%d: %s", tp.topic, tp.partition, ErrorCode(code).name
                                 if code in ErrorCode._value2member_map_ else code)
                        continue
                    st.high_watermark = p["high_watermark"]
                    st.last_stable_offset = p["last_stable_offset"]
                    st.log_start_offset = p["log_start_offset"]
                    if p["records"]:
                        aborted = p["aborted_transactions"] if self._isolation == READ_COMMITTED else None
                        got_records |= self._take_records(tp, st, p["records"], aborted)
            if reset:
                log.info("offsets out of range for %s: resetting (%s)", reset, self.auto_offset_reset)
                for tp in reset:
                    self._states[tp].position = None
                    self._states[tp].fetch_offset = None
                await self._reset_positions({tp: self._seek_token(tp) for tp in reset})
            if got_records:
                self._records_ready.set()
        except asyncio.CancelledError:
            raise
        except (KafkaError, KafkaConnectionError, KafkaTimeoutError, DecodeError) as e:
            if self._closed:
                return
            log.info("fetch from node %d failed: %s", node, e)
            refresh = True
            await asyncio.sleep(self.retry_backoff)
        finally:
            self._fetching_nodes.discard(node)
            self._fetch_wakeup.set()
        if refresh:
            await self._refresh_soon()

    def _take_records(self, tp: TopicPartition, st: _PartitionState, data, aborted: list[dict] | None) -> bool:
        """Buffer the fetched records; with read_committed, drop those of the aborted transactions listed."""
        offset = st.fetch_offset
        out = st.records
        buffered_before = len(out)
        topic, partition = tp
        # As Kafka's consumer: a transactional batch is dropped when its producer has an aborted transaction that
        # began at or before it, until that producer's ABORT marker is passed.
        upcoming = sorted((a["first_offset"], a["producer_id"]) for a in aborted or ())
        aborting: set[int] = set()
        for batch in iter_batches_lenient(data):
            next_offset = batch.next_offset
            if next_offset <= offset:
                continue
            while upcoming and upcoming[0][0] <= batch.last_offset:
                aborting.add(upcoming.pop(0)[1])
            if batch.is_control:
                if batch.producer_id in aborting and _is_abort_marker(batch):
                    aborting.discard(batch.producer_id)
            elif not (batch.is_transactional and batch.producer_id in aborting):
                decode_batch(batch, topic, partition, offset, out)
            offset = next_offset
        if not out and st.position == st.fetch_offset:
            st.position = offset  # only control batches: step over them, so lag and commits move on
        st.fetch_offset = offset
        return len(out) > buffered_before

    # Pull ------------------------------------------------------------------------------------------

    async def getmany(self, *partitions, timeout_ms: float = 0, max_records: int | None = None,
                      ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Records that have arrived, waiting up to timeout_ms for some. Calling it again marks the records
        it returned before as handled (for auto-commit). With key_deserializer / value_deserializer, keys and
        values come deserialized; a record that cannot be raises RecordDeserializationError (and stays next)."""
        batches = await self._poll(partitions, timeout_ms, max_records)
        if batches and self._deserializing:
            batches = self._deserialize_batches(batches)
        return batches

    @property
    def _deserializing(self) -> bool:
        return self.key_deserializer is not None or self.value_deserializer is not None

    def _deserialize(self, record: ConsumerRecord) -> ConsumerRecord:
        """A copy of the record with its key and value deserialized (called for None too, as aiokafka does)."""
        key, value = record.key, record.value
        try:
            if self.key_deserializer is not None:
                key = self.key_deserializer(key)
        except Exception as e:
            raise RecordDeserializationError(record.topic, record.partition, record.offset, "key", e) from e
        try:
            if self.value_deserializer is not None:
                value = self.value_deserializer(value)
        except Exception as e:
            raise RecordDeserializationError(record.topic, record.partition, record.offset, "value", e) from e
        return ConsumerRecord(record.topic, record.partition, record.offset, record.timestamp, key, value,
                              record.headers, record.timestamp_type)

    def _deserialize_batches(self, batches: dict[TopicPartition, list[ConsumerRecord]],
                             ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Records up to the first that cannot be deserialized, which is handed out again next time; its error
        is raised when there is nothing before it to return."""
        out: dict[TopicPartition, list[ConsumerRecord]] = {}
        error: RecordDeserializationError | None = None
        for tp, records in batches.items():
            done = []
            for record in records:
                try:
                    done.append(self._deserialize(record))
                except RecordDeserializationError as e:
                    error = error or e
                    self._rewind(tp, record.offset)
                    break
            if done:
                out[tp] = done
        if error is not None and not out:
            raise error
        return out

    async def _poll(self, partitions, timeout_ms: float, max_records: int | None,
                    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """getmany without deserializing."""
        await self.start()
        if self._closed:
            raise ClientClosedError("the consumer is closed")
        self._mark_all_returned_consumed()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        await self._wait_for_assignment(deadline)
        limit = max_records or self.max_poll_records
        wanted = {TopicPartition(*tp) for tp in partitions} or None
        while True:
            self._records_ready.clear()
            out = self._drain(limit, wanted)
            if out or self._stopping.is_set():
                return out
            remaining = deadline - loop.time()
            if remaining <= 0:
                return {}
            if not await wait_event(self._records_ready, remaining):
                return {}

    def _drain(self, limit: int, wanted: set | None) -> dict[TopicPartition, list[ConsumerRecord]]:
        out: dict[TopicPartition, list[ConsumerRecord]] = {}
        for tp, st in self._states.items():
            if st.error is not None:
                error, st.error = st.error, None
                raise error
            if limit <= 0:
                break
            if st.paused or not st.records or (wanted is not None and tp not in wanted):
                continue
            records = st.records
            if len(records) <= limit:
                taken = list(records)
                records.clear()
            else:
                taken = [records.popleft() for _ in range(limit)]
            limit -= len(taken)
            out[tp] = taken
            st.position = taken[-1].offset + 1
            if not records:  # past control batches (transaction markers) and aborted records after the last one
                st.position = max(st.position, st.fetch_offset)
            if len(records) < self.max_poll_records:
                self._fetch_wakeup.set()
        return out

    def _mark_all_returned_consumed(self) -> None:
        for st in self._states.values():
            if st.position is not None and not self._iter_pending:
                st.consumed = st.position

    async def getone(self, *partitions, timeout_ms: float | None = None) -> ConsumerRecord | None:
        """The next record (waiting for one; None after timeout_ms or stop())."""
        while True:
            batch = await self.getmany(*partitions, timeout_ms=timeout_ms or 1000, max_records=1)
            for records in batch.values():
                return records[0]
            if timeout_ms is not None or self._stopping.is_set():
                return None

    def __aiter__(self):
        return self

    async def __anext__(self) -> ConsumerRecord:
        self._mark_iterated_consumed()
        while not self._iter_pending:
            if self._stopping.is_set() or self._closed:
                raise StopAsyncIteration
            batch = await self.getmany(timeout_ms=1000)
            for records in batch.values():
                self._iter_pending.extend(records)
        record = self._iter_pending.popleft()
        self._iter_last = record
        return record

    # Push --------------------------------------------------------------------------------------------

    async def run(self, each_message: Callable[[ConsumerRecord], Awaitable[None]] | None = None, *,
                  each_batch: Callable[[TopicPartition, list[ConsumerRecord]], Awaitable[None]] | None = None,
                  ) -> None:
        """Call `each_message(record)` for every record, in order per partition, until stop() or close().
        A record counts as handled (and its offset becomes committable) when the handler returns. When the
        handler raises: with `retry=RetryPolicy(...)` the record is parked on `<topic>.retry` or, after the
        last attempt, `<topic>.dlq`, and consumption goes on; without it the error propagates."""
        if (each_message is None) == (each_batch is None):
            raise ValueError("give exactly one of each_message and each_batch")
        await self.start()
        while not self._stopping.is_set():
            batches = await self._poll((), 1000, None)
            for tp, records in batches.items():
                if self._stopping.is_set():
                    self._rewind(tp, records[0].offset)
                    continue
                if each_batch is not None:
                    if self._deserializing:
                        try:
                            records = [self._deserialize(r) for r in records]
                        except RecordDeserializationError:
                            self._rewind(tp, records[0].offset)
                            raise
                    await each_batch(tp, records)
                    self._mark_consumed(records[-1])
                    continue
                state = self._states.get(tp)
                epoch = state.epoch if state else None
                for i, record in enumerate(records):
                    if self._states.get(tp) is not state or state.epoch != epoch:
                        break  # revoked, or the handler seeked
                    if self._retry_router is not None:
                        delay = self._retry_router.delay_before(record)
                        if delay > 0:
                            self._hold(tp, record.offset, delay)
                            break
                    try:
                        # A record that cannot be deserialized fails like a failing handler (to the DLQ in time).
                        await each_message(self._deserialize(record) if self._deserializing else record)
                    except Exception as e:
                        if self._retry_router is None:
                            self._rewind(tp, record.offset)
                            raise
                        await self._retry_router.park(record, e)
                    self._mark_consumed(record)
                    if self._stopping.is_set() and i + 1 < len(records):
                        self._rewind(tp, records[i + 1].offset)
                        break

    def _rewind(self, tp: TopicPartition, offset: int) -> None:
        """Hand this offset out again next time (records after it were taken but not handled). Records
        before it that are not handled yet stay so."""
        st = self._states.get(tp)
        if st is not None:
            consumed = st.consumed
            self._set_position(tp, offset)
            if consumed is not None:
                st.consumed = min(consumed, offset)

    def _hold(self, tp: TopicPartition, offset: int, delay: float) -> None:
        """A retry record that is not due yet: pause its partition until it is, then read it again."""
        self._rewind(tp, offset)
        self.pause(tp)

        def wake():
            if tp in self._states:
                self.resume(tp)

        asyncio.get_running_loop().call_later(delay, wake)


def _is_abort_marker(batch: RecordBatch) -> bool:
    """A control batch's record key is (version int16, type int16): type 0 is ABORT, 1 is COMMIT."""
    for record in batch.records():
        key = record.key or b""
        return len(key) >= 4 and int.from_bytes(key[2:4], "big", signed=True) == 0
    return False
