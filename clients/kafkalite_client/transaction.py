"""A transactional producer's side of Kafka's transactions: its state, and its requests to the transaction
coordinator (InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn) and to the group coordinator
(TxnOffsetCommit). The Producer owns one Transaction and calls it around sending.

States, as the Java client's TransactionManager:
  READY             between transactions: begin_transaction() may start one;
  IN_TRANSACTION    records and offsets go into the transaction;
  COMMITTING        flushing, then EndTxn(commit) (a commit that timed out may be called again);
  ABORTING          dropping unsent records, then EndTxn(abort);
  ABORTABLE_ERROR   something in the transaction failed: only abort_transaction() works;
  FATAL_ERROR       fenced by a newer producer with the same transactional_id (or an error nothing else
                    clears): every transactional call raises it again, only close() is left.
Errors that clear by themselves (CONCURRENT_TRANSACTIONS while the last transaction's markers are written, a
coordinator loading or moving) are retried with backoff until request_timeout_ms has passed.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass
from typing import Callable

from kafkalite.protocol.api_keys import ApiKey
from kafkalite.protocol.errors import ErrorCode

from kafkalite_client.cluster import GROUP_KEY, TRANSACTION_KEY, Cluster
from kafkalite_client.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    ProducerFencedError,
    TransactionAbortableError,
    TransactionStateError,
    error_class,
)
from kafkalite_client.records import TopicPartition, to_offset_and_metadata

log = logging.getLogger(__name__)

INIT_PRODUCER_ID, ADD_PARTITIONS_TO_TXN, ADD_OFFSETS_TO_TXN, END_TXN, TXN_OFFSET_COMMIT = (
    ApiKey.INIT_PRODUCER_ID, ApiKey.ADD_PARTITIONS_TO_TXN, ApiKey.ADD_OFFSETS_TO_TXN, ApiKey.END_TXN,
    ApiKey.TXN_OFFSET_COMMIT)

FENCED = {ErrorCode.PRODUCER_FENCED, ErrorCode.INVALID_PRODUCER_EPOCH}
# Clear by themselves: retry (after finding the coordinator again, for the coordinator ones).
_COORDINATOR_MOVED = {ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE}
_RETRY = _COORDINATOR_MOVED | {ErrorCode.CONCURRENT_TRANSACTIONS, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
                               ErrorCode.REQUEST_TIMED_OUT, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
# Errors that no abort clears.
_FATAL = FENCED | {ErrorCode.INVALID_TXN_STATE, ErrorCode.INVALID_PRODUCER_ID_MAPPING,
                   ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                   ErrorCode.UNSUPPORTED_VERSION, ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT,
                   ErrorCode.INVALID_TRANSACTION_TIMEOUT, ErrorCode.TRANSACTION_COORDINATOR_FENCED,
                   ErrorCode.FENCED_INSTANCE_ID}


class TxnState(enum.Enum):
    UNINITIALIZED = "uninitialized"
    READY = "ready"
    IN_TRANSACTION = "in a transaction"
    COMMITTING = "committing"
    ABORTING = "aborting"
    ABORTABLE_ERROR = "in an abortable error"
    FATAL_ERROR = "in a fatal error"


@dataclass(frozen=True)
class ConsumerGroupMetadata:
    """What send_offsets_to_transaction needs of a consumer's group membership (Consumer.group_metadata()):
    with the generation and member id the coordinator refuses offsets of a member that lost its partitions."""

    group_id: str
    generation_id: int = -1
    member_id: str = ""
    group_instance_id: str | None = None


def kafka_error(code: int, message: str) -> KafkaError:
    """The exception for a code, with INVALID_PRODUCER_EPOCH read as fenced, as Kafka's clients do."""
    if code in FENCED:
        return ProducerFencedError(f"{message}: a newer producer with the same transactional_id fenced this one")
    return error_class(code)(message)


class Transaction:
    def __init__(self, cluster: Cluster, transactional_id: str, timeout_ms: int, *, retry_backoff: float,
                 request_timeout: float):
        self.cluster = cluster
        self.transactional_id = transactional_id
        self.timeout_ms = timeout_ms
        self.retry_backoff = retry_backoff
        self.request_timeout = request_timeout
        self.producer_id = -1
        self.producer_epoch = -1
        self.state = TxnState.UNINITIALIZED
        self.error: BaseException | None = None  # the cause of ABORTABLE_ERROR or FATAL_ERROR
        self.partitions: set[tuple[str, int]] = set()  # added to the transaction at the coordinator
        self.pending: set[tuple[str, int]] = set()  # written to in the transaction, not added yet
        self.adding: asyncio.Task | None = None  # the AddPartitionsToTxn under way
        self.started = False  # the coordinator knows of this transaction (a partition or offsets were added)
        self.sequences_broken = False  # a sent batch failed: sequence numbers need a new epoch after the abort

    # State ------------------------------------------------------------------------------------

    def _raise_if_failed(self) -> None:
        if self.state == TxnState.FATAL_ERROR:
            raise self.error
        if self.state == TxnState.ABORTABLE_ERROR:
            raise TransactionAbortableError("the transaction failed", self.error)

    def _require(self, *states: TxnState, doing: str) -> None:
        if self.state not in states:
            self._raise_if_failed()
            raise TransactionStateError(f"cannot {doing}: the producer is {self.state.value}")

    def check_can_send(self) -> None:
        self._require(TxnState.IN_TRANSACTION, doing="send: a transactional producer sends only inside "
                                                     "begin_transaction() ... commit_transaction()")

    def begin(self) -> None:
        self._require(TxnState.READY, doing="begin a transaction")
        self.state = TxnState.IN_TRANSACTION

    def fail(self, error: BaseException) -> None:
        """Something in the transaction failed: fenced and the like are fatal, the rest abortable."""
        if self.state in (TxnState.FATAL_ERROR, TxnState.ABORTING):
            return
        if isinstance(error, KafkaError) and error.code in _FATAL:
            self.state, self.error = TxnState.FATAL_ERROR, error
        elif self.state != TxnState.ABORTABLE_ERROR:
            self.state, self.error = TxnState.ABORTABLE_ERROR, error

    @property
    def aborting(self) -> bool:
        return self.state in (TxnState.ABORTING, TxnState.ABORTABLE_ERROR, TxnState.FATAL_ERROR)

    # Requests -------------------------------------------------------------------------------------

    async def _request(self, api_key: int, body: dict, codes: Callable[[dict], list[int]], what: str,
                       group_id: str | None = None) -> None:
        """Send to the transaction coordinator (or the group's, given group_id) until no error code is left,
        retrying those that clear by themselves; raise the first other one."""
        key, key_type = (self.transactional_id, TRANSACTION_KEY) if group_id is None else (group_id, GROUP_KEY)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        delay = self.retry_backoff
        while True:
            try:
                node = await self.cluster.coordinator(key, key_type)
                response = await self.cluster.request(node, api_key, body)
                found = [c for c in codes(response) if c]
                error = kafka_error(found[0], what) if found else None
            except (KafkaConnectionError, KafkaTimeoutError) as e:
                self.cluster.forget_coordinator(key, key_type)
                found, error = [ErrorCode.NOT_COORDINATOR], e
            except KafkaError as e:  # FindCoordinator's own error
                found, error = [e.code], e
            if not found:
                return
            if not all(c in _RETRY for c in found):
                # OPERATION_NOT_ATTEMPTED marks the partitions left alone because another one failed
                code = next((c for c in found if c not in _RETRY and c != ErrorCode.OPERATION_NOT_ATTEMPTED),
                            found[0])
                raise kafka_error(code, what)
            if any(c in _COORDINATOR_MOVED for c in found):
                self.cluster.forget_coordinator(key, key_type)
            if loop.time() + delay > deadline:
                raise KafkaTimeoutError(f"{what}: still failing after {self.request_timeout:g}s: {error}")
            log.info("%s: %s; retrying", what, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def init(self) -> None:
        """InitProducerId: a producer id and a new epoch, which fences every older producer with this id and
        aborts what it left open. After an abort with broken sequences, the current id and epoch go along
        (KIP-360) so that the coordinator bumps the epoch instead of fencing this producer."""
        body = {"transactional_id": self.transactional_id, "transaction_timeout_ms": self.timeout_ms,
                "producer_id": -1, "producer_epoch": -1}
        if self.producer_id >= 0 and (await self.cluster.any_connection()).version(INIT_PRODUCER_ID) >= 3:
            body.update(producer_id=self.producer_id, producer_epoch=self.producer_epoch)
        answer: dict = {}

        def codes(response: dict) -> list[int]:
            answer.update(response)
            return [response["error_code"]]

        try:
            await self._request(INIT_PRODUCER_ID, body, codes, f"InitProducerId for {self.transactional_id!r}")
        except KafkaError as e:
            self.state, self.error = TxnState.FATAL_ERROR, e
            raise
        self.producer_id, self.producer_epoch = answer["producer_id"], answer["producer_epoch"]
        self.state = TxnState.READY

    async def add_partitions(self, tps: set[tuple[str, int]]) -> None:
        """AddPartitionsToTxn for partitions written to in the transaction; on failure the transaction fails."""
        by_topic: dict[str, list[int]] = {}
        for topic, partition in sorted(tps):
            by_topic.setdefault(topic, []).append(partition)
        body = {"transactional_id": self.transactional_id, "producer_id": self.producer_id,
                "producer_epoch": self.producer_epoch,
                "topics": [{"name": t, "partitions": ps} for t, ps in by_topic.items()]}

        def codes(response: dict) -> list[int]:
            return [p["partition_error_code"] for t in response["results_by_topic"] for p in t["results_by_partition"]]

        try:
            await self._request(ADD_PARTITIONS_TO_TXN, body, codes, "adding partitions to the transaction")
        except (KafkaError, KafkaTimeoutError) as e:
            self.fail(e)
            raise
        finally:
            self.pending -= tps
        self.partitions |= tps
        self.started = True

    async def send_offsets(self, offsets: dict, group: ConsumerGroupMetadata | str) -> None:
        """AddOffsetsToTxn to the transaction coordinator, then TxnOffsetCommit to the group coordinator."""
        self._require(TxnState.IN_TRANSACTION, doing="send offsets to the transaction")
        if isinstance(group, str):
            group = ConsumerGroupMetadata(group)
        topics: dict[str, list[dict]] = {}
        for tp, offset in offsets.items():
            tp, offset = TopicPartition(*tp), to_offset_and_metadata(offset)
            topics.setdefault(tp.topic, []).append({
                "partition_index": tp.partition, "committed_offset": int(offset), "committed_leader_epoch": -1,
                "committed_metadata": offset.metadata})
        try:
            await self._request(ADD_OFFSETS_TO_TXN, {
                "transactional_id": self.transactional_id, "producer_id": self.producer_id,
                "producer_epoch": self.producer_epoch, "group_id": group.group_id},
                lambda r: [r["error_code"]], f"adding the offsets of group {group.group_id!r} to the transaction")
            self.started = True
            await self._request(TXN_OFFSET_COMMIT, {
                "transactional_id": self.transactional_id, "group_id": group.group_id,
                "producer_id": self.producer_id, "producer_epoch": self.producer_epoch,
                "generation_id": group.generation_id, "member_id": group.member_id,
                "group_instance_id": group.group_instance_id,
                "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()]},
                lambda r: [p["error_code"] for t in r["topics"] for p in t["partitions"]],
                f"committing offsets of group {group.group_id!r} in the transaction", group_id=group.group_id)
        except (KafkaError, KafkaTimeoutError) as e:
            self.fail(e)
            raise

    def start_commit(self) -> None:
        self._require(TxnState.IN_TRANSACTION, TxnState.COMMITTING, doing="commit")
        self.state = TxnState.COMMITTING

    def start_abort(self) -> None:
        if self.state == TxnState.FATAL_ERROR:
            raise self.error
        self._require(TxnState.IN_TRANSACTION, TxnState.ABORTABLE_ERROR, TxnState.ABORTING, doing="abort")
        self.state = TxnState.ABORTING
        self.pending.clear()  # nothing more is added to a transaction being aborted

    async def end(self, commit: bool) -> None:
        """EndTxn, when the coordinator knows of the transaction; then READY for the next one."""
        if commit:
            self._raise_if_failed()  # a record of the transaction failed while flushing
        if self.started:
            try:
                await self._request(END_TXN, {
                    "transactional_id": self.transactional_id, "producer_id": self.producer_id,
                    "producer_epoch": self.producer_epoch, "committed": commit},
                    lambda r: [r["error_code"]], "committing the transaction" if commit else "aborting the transaction")
            except KafkaTimeoutError:
                raise  # the same call may be made again
            except KafkaError as e:
                if commit:
                    self.fail(e)
                else:  # nothing is left to clear a failed abort
                    self.state, self.error = TxnState.FATAL_ERROR, e
                raise
        if not commit and self.sequences_broken:
            await self.init()  # a new epoch: the partitions' sequence numbers start again
            self.sequences_broken = False
        self.partitions.clear()
        self.pending.clear()
        self.started = False
        self.state, self.error = TxnState.READY, None
