"""The producer: records are appended to per-partition batches; a sender task ships ready batches (full,
lingered long enough, or flushed) to each partition's leader, retries what failed retriably, and resolves
each record's metadata.

Ordering: at most one batch per partition is in flight, so retries can never reorder a partition, with
or without idempotence. Across partitions, up to `max_in_flight` Produce requests per broker are in flight.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from typing import Any, AsyncIterator, Callable

from kafkalite.protocol.api_keys import ApiKey
from kafkalite.protocol import compression
from kafkalite.protocol.errors import ErrorCode

from kafkalite_client._aio import wait_event, with_timeout
from kafkalite_client.batch import RECORD_OVERHEAD, ProducerBatch
from kafkalite_client.cluster import Cluster
from kafkalite_client.errors import (
    ClientClosedError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageTooLargeError,
    TransactionAbortedError,
    TransactionStateError,
    UnknownTopicOrPartitionError,
    UnsupportedVersionByBroker,
    error_class,
)
from kafkalite_client.partitioner import StickyPartitioner
from kafkalite_client.records import RecordMetadata, to_bytes, to_headers
from kafkalite_client.transaction import FENCED, ConsumerGroupMetadata, Transaction, TxnState, kafka_error

log = logging.getLogger(__name__)

PRODUCE, INIT_PRODUCER_ID = ApiKey.PRODUCE, ApiKey.INIT_PRODUCER_ID
ACKS = {"all": -1, -1: -1, "-1": -1, 0: 0, "0": 0, 1: 1, "1": 1}
_REFRESH_ON = {
    ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.LEADER_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS, ErrorCode.KAFKA_STORAGE_ERROR,
}


class Producer:
    """Sends records to topics: `await send(...)` waits for the acknowledgement, `await enqueue(...)` returns
    a future at once (then `flush()`). Use as `async with Producer(...) as p:`, or `start()` and `close()`.

    Arguments, with their defaults (the Java client's names and meanings, in milliseconds and bytes):
      bootstrap_servers='127.0.0.1:9092': 'host:port[,host:port...]' or a list of them.
      client_id='kafkalite-producer': the client id the broker logs and quotas see.
      acks='all': 'all' (-1) waits for every in-sync replica, 1 for the leader, 0 for nothing (offset -1).
      compression_type=None: None, 'gzip', 'snappy', 'lz4' or 'zstd'.
      batch_size=16384: a partition's batch is sent once it holds this many bytes ...
      linger_ms=5: ... or once its first record waited this long.
      max_in_flight=5: Produce requests in flight per broker (one batch per partition at a time, always).
      retries=2147483647: attempts per batch after retriable errors, within delivery_timeout_ms.
      retry_backoff_ms=100: the first wait before a retry, doubling per attempt up to 1 s.
      request_timeout_ms=30000: how long to wait for a broker's answer.
      delivery_timeout_ms=120000: a record not acknowledged by then fails with KafkaTimeoutError.
      enable_idempotence=None: None turns it on unless acks is lowered (as in the Java client); True
        insists (it needs acks='all'), False turns it off. Retries then never write a record twice.
      max_request_size=1048576: the largest record (and Produce request) sent; larger records raise
        MessageTooLargeError at once.
      buffer_memory=33554432: bytes buffered before send/enqueue wait for room (32 MiB).
      partitioner=None: a StickyPartitioner by default: keys by murmur2 as Java's, keyless records stick to
        one partition per batch.
      key_serializer=None: a callable turning each key into bytes (or str or None), as aiokafka's; it is
        called for every record, None keys included.
      value_serializer=None: the same for values (a tombstone stays one only if it returns None for None).
      transactional_id=None: makes the producer transactional (and idempotent, with acks='all'): start()
        takes this id's producer id and epoch, fencing any older producer with the same id; records are then
        sent only between begin_transaction() and commit_transaction() or abort_transaction() (or inside
        `async with producer.transaction():`).
      transaction_timeout_ms=60000: the coordinator aborts a transaction left open this long.
    """

    def __init__(
        self,
        bootstrap_servers="127.0.0.1:9092",
        *,
        client_id: str = "kafkalite-producer",
        acks="all",
        compression_type: str | None = None,
        batch_size: int = 16384,
        linger_ms: float = 5,
        max_in_flight: int = 5,
        retries: int = 2**31 - 1,
        retry_backoff_ms: float = 100,
        request_timeout_ms: float = 30000,
        delivery_timeout_ms: float = 120000,
        enable_idempotence: bool | None = None,
        max_request_size: int = 1048576,
        buffer_memory: int = 32 * 1024 * 1024,
        partitioner: StickyPartitioner | None = None,
        key_serializer: Callable[[Any], bytes | str | None] | None = None,
        value_serializer: Callable[[Any], bytes | str | None] | None = None,
        transactional_id: str | None = None,
        transaction_timeout_ms: int = 60000,
    ):
        if acks not in ACKS:
            raise ValueError(f"acks must be 'all', -1, 0 or 1, not {acks!r}")
        self.acks = ACKS[acks]
        if transactional_id is not None:
            if enable_idempotence is False or self.acks != -1:
                raise ValueError("a transactional producer is idempotent: it needs acks='all' and "
                                 "enable_idempotence left on")
            enable_idempotence = True
        if enable_idempotence and self.acks != -1:
            raise ValueError("enable_idempotence needs acks='all'")
        # As in the Java client: on by default, unless acks was lowered.
        self.idempotent = self.acks == -1 if enable_idempotence is None else enable_idempotence
        self._idempotence_requested = bool(enable_idempotence)
        name = (compression_type or "none").lower()
        if name not in compression.BY_NAME:
            raise ValueError(f"unknown compression_type {compression_type!r}; "
                             f"use one of {', '.join(compression.BY_NAME)}")
        self.codec = compression.BY_NAME[name]
        self.batch_size = batch_size
        self.linger = linger_ms / 1000
        self.max_in_flight = max_in_flight
        self.retries = retries
        self.retry_backoff = retry_backoff_ms / 1000
        self.request_timeout = request_timeout_ms / 1000
        self.delivery_timeout = delivery_timeout_ms / 1000
        self.max_request_size = max_request_size
        self.buffer_memory = buffer_memory
        self.partitioner = partitioner or StickyPartitioner()
        self.key_serializer = key_serializer
        self.value_serializer = value_serializer
        self.cluster = Cluster(bootstrap_servers, client_id=client_id, request_timeout=self.request_timeout)
        self.transactional_id = transactional_id
        self._txn: Transaction | None = None
        if transactional_id is not None:
            self._txn = Transaction(self.cluster, transactional_id, transaction_timeout_ms,
                                    retry_backoff=self.retry_backoff, request_timeout=self.request_timeout)

        self.producer_id = -1
        self.producer_epoch = -1
        # Keyed by (topic, partition) tuples: made per record, and cheaper than TopicPartition (equal to them).
        self._next_sequence: dict[tuple[str, int], int] = collections.defaultdict(int)
        self._queues: dict[tuple[str, int], collections.deque[ProducerBatch]] = {}
        self._in_flight_partitions: set[tuple[str, int]] = set()
        self._in_flight_requests: dict[int, int] = collections.defaultdict(int)
        self._unfinished: set[ProducerBatch] = set()
        self._buffered_bytes = 0
        self._space = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._flushing = 0
        self._sender: asyncio.Task | None = None
        self._sender_error: KafkaError | None = None  # the sender died of a bug: nothing can be sent any more
        self._request_tasks: set[asyncio.Task] = set()
        self._started = False
        self._closed = False
        self._start_lock = asyncio.Lock()

    # Lifecycle ------------------------------------------------------------------------------

    async def start(self) -> "Producer":
        async with self._start_lock:
            if self._started:
                return self
            if self._closed:
                raise ClientClosedError("the producer is closed")
            await self.cluster.refresh()
            if self._txn is not None:
                await self._txn.init()
                self._take_producer_id()
            elif self.idempotent:
                await self._init_producer_id()
            self._sender = asyncio.get_running_loop().create_task(self._send_loop())
            self._sender.add_done_callback(self._sender_stopped)
            self._started = True
        return self

    async def _init_producer_id(self) -> None:
        conn = await self.cluster.any_connection()
        if INIT_PRODUCER_ID not in conn.versions:
            if self._idempotence_requested:
                raise UnsupportedVersionByBroker(f"broker {conn.address} does not support InitProducerId, "
                                                 "which idempotence needs")
            self.idempotent = False
            return
        delay = self.retry_backoff
        for _ in range(10):
            response = await conn.request(INIT_PRODUCER_ID, {"transactional_id": None,
                                                             "transaction_timeout_ms": 60000})
            code = response["error_code"]
            if not code:
                self.producer_id = response["producer_id"]
                self.producer_epoch = response["producer_epoch"]
                return
            if not error_class(code).code.retriable:
                break
            await asyncio.sleep(delay)
            delay *= 2
        raise error_class(code)("InitProducerId failed; cannot start an idempotent producer")

    def _take_producer_id(self) -> None:
        """The transaction's producer id and epoch (a new epoch starts every partition's sequence again)."""
        if (self._txn.producer_id, self._txn.producer_epoch) != (self.producer_id, self.producer_epoch):
            self.producer_id, self.producer_epoch = self._txn.producer_id, self._txn.producer_epoch
            self._next_sequence.clear()

    async def __aenter__(self) -> "Producer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def flush(self, timeout: float | None = None) -> None:
        """Send everything buffered now and wait until each of those records succeeded or failed."""
        batches = list(self._unfinished)
        if not batches:
            return
        self._flushing += 1
        self._wakeup.set()
        try:
            await with_timeout(asyncio.gather(*(asyncio.shield(b.done) for b in batches),
                                              return_exceptions=True), timeout)
        finally:
            self._flushing -= 1

    async def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the sender and close connections. Records sent afterwards raise ClientClosedError."""
        if self._closed:
            return
        try:
            if self._started:
                await self.flush(timeout)
        finally:
            self._closed = True
            if self._sender is not None:
                self._sender.cancel()
            for task in list(self._request_tasks):
                task.cancel()
            for batch in list(self._unfinished):
                self._finish(batch, ClientClosedError("the producer closed before the record was sent"))
            self.cluster.close()

    # Transactions ---------------------------------------------------------------------------

    def _transaction(self) -> Transaction:
        if self._txn is None:
            raise TransactionStateError("this producer has no transactional_id")
        if self._closed:
            raise ClientClosedError("the producer is closed")
        return self._txn

    async def init_transactions(self) -> None:
        """Take the transactional id's producer id and epoch (fencing older producers with the same id, and
        aborting what they left open). start() does it; this is the Java and confluent-kafka name."""
        self._transaction()
        await self.start()

    def begin_transaction(self) -> None:
        """Start a transaction: what is sent from now until commit_transaction() is visible to read_committed
        consumers only once committed, and never if aborted."""
        txn = self._transaction()
        if not self._started:
            raise TransactionStateError("start the producer (or use `async with`) before begin_transaction()")
        txn.begin()

    async def send_offsets_to_transaction(self, offsets: dict, group: ConsumerGroupMetadata | str) -> None:
        """Commit a consumer group's offsets ({partition: next offset to read}, as Consumer.commit takes them)
        as part of the transaction: they count only if it commits. `group` is Consumer.group_metadata() (the
        coordinator then refuses offsets from a member the group has moved on from) or a group id."""
        await self._transaction().send_offsets(offsets, group)

    async def commit_transaction(self) -> None:
        """Send every buffered record, then commit. If a record of the transaction failed this raises
        TransactionAbortableError and only abort_transaction() is left; ProducerFencedError is fatal. After a
        KafkaTimeoutError the commit may be called again."""
        txn = self._transaction()
        txn.start_commit()
        await self.flush()
        await txn.end(commit=True)

    async def abort_transaction(self) -> None:
        """Drop the records not sent yet, wait for those in flight, and abort: read_committed consumers never
        see the transaction's records, and its offsets are not committed."""
        txn = self._transaction()
        txn.start_abort()
        for queue in self._queues.values():
            for batch in list(queue):
                self._finish(batch, TransactionAbortedError("the transaction was aborted before the record was sent"))
        if txn.adding is not None:
            await asyncio.gather(asyncio.shield(txn.adding), return_exceptions=True)
        await self.flush()  # what is left is in flight
        await txn.end(commit=False)
        self._take_producer_id()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator["Producer"]:
        """`async with producer.transaction():` begins a transaction, commits it when the block ends, and
        aborts it (then re-raises) when the block or the commit raises."""
        self.begin_transaction()
        try:
            yield self
            await self.commit_transaction()
        except BaseException:
            # not after a fatal error, nor after a commit that timed out (its outcome is unknown)
            if self._txn.state in (TxnState.IN_TRANSACTION, TxnState.ABORTABLE_ERROR):
                await self.abort_transaction()
            raise

    # Sending --------------------------------------------------------------------------------

    async def send(self, topic: str, value=None, *, key=None, headers=None, partition: int | None = None,
                   timestamp: int | None = None) -> RecordMetadata:
        """Send one record and wait until the broker acknowledged it (as `acks` says)."""
        batch, index, timestamp = await self._append(topic, value, key, headers, partition, timestamp)
        base_offset, log_append_time = await asyncio.shield(batch.done)
        return _metadata(batch, index, timestamp, base_offset, log_append_time)

    async def send_and_wait(self, topic: str, value=None, key=None, partition: int | None = None,
                            timestamp_ms: int | None = None, headers=None) -> RecordMetadata:
        """aiokafka's name (and argument names) for `send`: send one record and wait for its acknowledgement."""
        return await self.send(topic, value, key=key, headers=headers, partition=partition, timestamp=timestamp_ms)

    async def enqueue(self, topic: str, value=None, *, key=None, headers=None, partition: int | None = None,
                      timestamp: int | None = None) -> "asyncio.Future[RecordMetadata]":
        """Buffer one record and return at once with a future of its metadata: for sending many records
        without waiting for each (then `flush()` or gather the futures)."""
        batch, index, timestamp = await self._append(topic, value, key, headers, partition, timestamp)
        future = asyncio.get_running_loop().create_future()
        if batch.record_futures is None:
            batch.record_futures = []
        batch.record_futures.append((index, timestamp, future))
        return future

    async def partitions_for(self, topic: str) -> list[int]:
        await self.start()
        info = await self.cluster.topic(topic, self.request_timeout)
        return sorted(info.partitions)

    async def _append(self, topic, value, key, headers, partition, timestamp) -> tuple[ProducerBatch, int, int]:
        if self._closed:
            raise ClientClosedError("the producer is closed")
        if self._sender_error is not None:
            raise self._sender_error
        if not self._started:
            await self.start()
        if self._txn is not None:
            self._txn.check_can_send()
        # As aiokafka's: a serializer is called for every record, None included (a tombstone stays one only if
        # the serializer returns None for it).
        if self.key_serializer is not None:
            key = self.key_serializer(key)
        if self.value_serializer is not None:
            value = self.value_serializer(value)
        # Per record, so the common types skip the conversion calls.
        if key is not None and type(key) is not bytes:
            key = to_bytes(key, "a key")
        if value is not None and type(value) is not bytes:
            value = to_bytes(value, "a value")
        headers = to_headers(headers) if headers else ()
        if timestamp is None:
            timestamp = int(time.time() * 1000)
        info = self.cluster.topics.get(topic)
        if info is None or not info.partitions:
            info = await self.cluster.topic(topic, self.request_timeout)
        count = len(info.partitions)
        if partition is None:
            partition = self.partitioner.partition(topic, key, count, info.available)
        elif not 0 <= partition < count:
            raise UnknownTopicOrPartitionError(f"topic {topic!r} has no partition {partition} "
                                               f"(it has {count})")
        size = RECORD_OVERHEAD + (len(key) if key else 0) + (len(value) if value else 0)
        if headers:
            size += sum(len(k) + len(v or b"") + 8 for k, v in headers)
        if size + 61 > self.max_request_size:
            raise MessageTooLargeError(f"a record of about {size} bytes is larger than max_request_size "
                                       f"({self.max_request_size})")
        while self._buffered_bytes + size > self.buffer_memory and self._unfinished:
            self._space.clear()
            self._wakeup.set()
            await self._space.wait()
        tp = (topic, partition)
        if self._txn is not None and tp not in self._txn.partitions and tp not in self._txn.pending:
            self._txn.pending.add(tp)  # the sender adds it to the transaction before its first batch goes
            self._wakeup.set()
        queue = self._queues.get(tp)
        if queue is None:
            queue = self._queues[tp] = collections.deque()
        batch = queue[-1] if queue else None
        if batch is None or batch.closed or (batch.count and batch.size + size > self.batch_size):
            if batch is not None and not batch.closed:
                batch.closed = True  # full: the sender may take it now
                self.partitioner.next_batch(topic, partition)
                self._wakeup.set()
            batch = ProducerBatch(topic, partition, time.monotonic())
            queue.append(batch)
            self._unfinished.add(batch)
            self._wakeup.set()
        index = batch.append(key, value, headers, timestamp)
        batch.buffered += size
        self._buffered_bytes += size
        if batch.size >= self.batch_size:
            batch.closed = True
            self.partitioner.next_batch(topic, partition)
            self._wakeup.set()
        return batch, index, timestamp

    # The sender -----------------------------------------------------------------------------

    def _sender_stopped(self, task: asyncio.Task) -> None:
        """The sender only ends when cancelled by close(). If a bug ends it, fail every record now rather than
        leave callers waiting for acknowledgements that cannot come."""
        if task.cancelled() or task.exception() is None:
            return
        log.error("the producer's sender failed", exc_info=task.exception())
        self._sender_error = KafkaError(f"the producer's sender failed: {task.exception()!r}")
        for batch in list(self._unfinished):
            self._finish(batch, self._sender_error)

    async def _send_loop(self) -> None:
        while True:
            next_wake = self._dispatch_ready()
            self._wakeup.clear()
            if next_wake is None:
                await self._wakeup.wait()
            else:
                delay = next_wake - time.monotonic()
                if delay > 0:
                    await wait_event(self._wakeup, delay)

    def _dispatch_ready(self) -> float | None:
        """Start Produce requests for ready batches; return when the next batch becomes ready."""
        now = time.monotonic()
        next_wake = None
        by_node: dict[int, list[ProducerBatch]] = {}
        urgent = self._flushing or self._closed
        need_metadata = False
        txn = self._txn
        if txn is not None and txn.pending:
            if txn.error is not None:  # failed: what waits for AddPartitionsToTxn will never be sent
                self._drop_unadded(txn.error)
            elif txn.adding is None and not txn.aborting:
                txn.adding = self._spawn(self._add_partitions(set(txn.pending)))
        for tp, queue in self._queues.items():
            if not queue or tp in self._in_flight_partitions:
                continue
            if txn is not None and tp not in txn.partitions:
                continue  # waits for AddPartitionsToTxn, which wakes the loop
            batch = queue[0]
            if batch.retry_at > now:
                next_wake = batch.retry_at if next_wake is None else min(next_wake, batch.retry_at)
                continue
            if not (batch.closed or len(queue) > 1 or urgent or batch.attempts):
                ready_at = batch.created + self.linger
                if ready_at > now:
                    next_wake = ready_at if next_wake is None else min(next_wake, ready_at)
                    continue
            leader = self.cluster.leader(*tp)
            if leader < 0:
                need_metadata = True
                next_wake = now + self.retry_backoff if next_wake is None else min(next_wake, now + self.retry_backoff)
                continue
            by_node.setdefault(leader, []).append(batch)
        if need_metadata:
            self._spawn(self._refresh_metadata())
        for node, batches in by_node.items():
            if self._in_flight_requests[node] >= self.max_in_flight:
                continue  # a finishing request wakes the loop
            chosen, total = [], 0
            for batch in batches:
                batch_size = batch.size if batch.encoded is None else len(batch.encoded)
                if chosen and total + batch_size > self.max_request_size:
                    break
                chosen.append(batch)
                total += batch_size
            for batch in chosen:
                tp = (batch.topic, batch.partition)
                self._queues[tp].popleft()
                batch.closed = True
                self.partitioner.next_batch(batch.topic, batch.partition)
                self._in_flight_partitions.add(tp)
            self._in_flight_requests[node] += 1
            self._spawn(self._produce(node, chosen))
        return next_wake

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._request_tasks.add(task)
        task.add_done_callback(self._request_tasks.discard)
        return task

    def _drop_unadded(self, error: BaseException) -> None:
        """Fail the records waiting for partitions the failed transaction never added."""
        for tp, queue in self._queues.items():
            if tp not in self._txn.partitions:
                for batch in list(queue):
                    self._finish(batch, error)
        self._txn.pending.clear()

    async def _add_partitions(self, tps: set[tuple[str, int]]) -> None:
        """AddPartitionsToTxn; if it fails, the records waiting for these partitions fail with its error."""
        try:
            await self._txn.add_partitions(tps)
        except (KafkaError, KafkaTimeoutError) as e:
            for tp in tps:
                for batch in list(self._queues.get(tp, ())):
                    self._finish(batch, e)
        finally:
            self._txn.adding = None
            self._wakeup.set()

    async def _refresh_metadata(self) -> None:
        try:
            await self.cluster.refresh()
        except (KafkaError, KafkaConnectionError, KafkaTimeoutError) as e:
            log.warning("metadata refresh failed: %s", e)
        self._wakeup.set()

    def _encode(self, batch: ProducerBatch) -> bytes:
        if batch.encoded is None:
            sequence = -1
            if self.idempotent:
                tp = (batch.topic, batch.partition)
                sequence = self._next_sequence[tp]
                self._next_sequence[tp] = (sequence + batch.count) & 0x7FFFFFFF
            batch.encode(self.codec, self.producer_id, self.producer_epoch, sequence,
                         transactional=self._txn is not None)
        return batch.encoded

    async def _produce(self, node: int, batches: list[ProducerBatch]) -> None:
        topics: dict[str, list[dict]] = {}
        for batch in batches:
            batch.attempts += 1
            topics.setdefault(batch.topic, []).append({"index": batch.partition, "records": self._encode(batch)})
        body = {"transactional_id": self.transactional_id, "acks": self.acks,
                "timeout_ms": int(self.request_timeout * 1000),
                "topic_data": [{"name": t, "partition_data": parts} for t, parts in topics.items()]}
        try:
            try:
                conn = await self.cluster.connection(node)
                response = await conn.request(PRODUCE, body, expect_response=self.acks != 0,
                                              timeout=self.request_timeout + 5)
            except (KafkaConnectionError, KafkaTimeoutError) as e:
                for batch in batches:
                    self._retry_or_fail(batch, e, refresh=True)
                self._spawn(self._refresh_metadata())
                return
            if response is None:  # acks=0
                for batch in batches:
                    self._finish(batch, (-1, -1))
                return
            results = {(t["name"], p["index"]): p for t in response["responses"] for p in t["partition_responses"]}
            refresh = False
            for batch in batches:
                result = results.get((batch.topic, batch.partition))
                if result is None:
                    self._retry_or_fail(batch, KafkaConnectionError(
                        f"the Produce response from node {node} left out {batch.topic}-{batch.partition}"))
                    continue
                code = result["error_code"]
                if code == 0 or code == ErrorCode.DUPLICATE_SEQUENCE_NUMBER:
                    self._finish(batch, (result["base_offset"], result["log_append_time_ms"]))
                    continue
                what = f"producing to {batch.topic}-{batch.partition}: {result.get('error_message') or 'refused'}"
                error = kafka_error(code, what) if self._txn is not None and code in FENCED else error_class(code)(what)
                refresh |= code in _REFRESH_ON
                self._retry_or_fail(batch, error)
            if refresh:
                self._spawn(self._refresh_metadata())
        finally:
            self._in_flight_requests[node] -= 1
            for batch in batches:
                self._in_flight_partitions.discard((batch.topic, batch.partition))
            self._wakeup.set()

    def _retry_or_fail(self, batch: ProducerBatch, error: Exception, refresh: bool = False) -> None:
        retriable = getattr(error, "retriable", False)
        expired = time.monotonic() - batch.created > self.delivery_timeout
        aborting = self._txn is not None and self._txn.aborting
        if retriable and batch.attempts <= self.retries and not expired and not self._closed and not aborting:
            log.info("retrying a batch for %s-%d after: %s", batch.topic, batch.partition, error)
            batch.retry_at = time.monotonic() + min(self.retry_backoff * 2 ** (batch.attempts - 1), 1.0)
            self._queues[(batch.topic, batch.partition)].appendleft(batch)
            return
        if expired and retriable:
            error = KafkaTimeoutError(f"records for {batch.topic}-{batch.partition} were not delivered within "
                                      f"delivery_timeout_ms ({self.delivery_timeout * 1000:g}); last error: {error}")
        self._finish(batch, error)

    def _finish(self, batch: ProducerBatch, result) -> None:
        """Resolve a batch with (base_offset, log_append_time) or an exception."""
        if batch.done.done():
            return
        self._unfinished.discard(batch)
        tp = (batch.topic, batch.partition)
        queue = self._queues.get(tp)
        if queue and batch in queue:
            queue.remove(batch)
        if isinstance(result, BaseException):
            if self._txn is not None:
                self._txn.fail(result)  # a transaction with a lost record cannot commit
                if batch.encoded is not None:
                    self._txn.sequences_broken = True  # its sequence numbers were used, maybe not written
            batch.done.set_exception(result)
            batch.done.exception()  # mark retrieved: a caller may have used only enqueue() or nothing
        else:
            batch.done.set_result(result)
        if batch.record_futures:
            for index, timestamp, future in batch.record_futures:
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(_metadata(batch, index, timestamp, *result))
        self._buffered_bytes -= batch.buffered
        self._space.set()


def _metadata(batch: ProducerBatch, index: int, timestamp: int, base_offset: int,
              log_append_time: int) -> RecordMetadata:
    offset = base_offset + index if base_offset >= 0 else -1
    return RecordMetadata(batch.topic, batch.partition, offset,
                          log_append_time if log_append_time != -1 else timestamp)
