"""The transaction coordinator's rules (Kafka's TransactionCoordinator and TransactionMetadata), without I/O.

Errors are Kafka's: an unknown transactional id or a producer id that is not the id's current one is
INVALID_PRODUCER_ID_MAPPING, an older epoch PRODUCER_FENCED (handlers of versions before PRODUCER_FENCED existed
answer INVALID_PRODUCER_EPOCH), a transition under way CONCURRENT_TRANSACTIONS (clients retry), a request that
does not fit the state INVALID_TXN_STATE.

Aborts the coordinator starts itself (a transaction that outlived its timeout, or an InitProducerId that finds one
still open) bump the producer epoch first, as Kafka's epoch fence: the markers carry the new epoch, so the old
producer's later writes, and its EndTxn, are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kafkalite.protocol.errors import ErrorCode
from kafkalite.txn import records
from kafkalite.txn.state import MAX_PRODUCER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, TxnMetadata, TxnState


@dataclass(frozen=True)
class TxnConfig:
    num_partitions: int = 50  # transaction.state.log.num.partitions
    max_timeout_ms: int = 900_000  # transaction.max.timeout.ms
    id_expiration_ms: int = 604_800_000  # transactional.id.expiration.ms (7 days)

    @classmethod
    def from_mapping(cls, settings) -> "TxnConfig":
        return cls(settings["transaction.state.log.num.partitions"], settings["transaction.max.timeout.ms"],
                   settings["transactional.id.expiration.ms"])


@dataclass
class Plan:
    """What a request does: `error` (then nothing else), or the next state of `transactional_id` and the record
    to write before it holds. `markers`: the transaction to finish once the new state holds (its partitions,
    producer id and epoch, commit or abort). `producer_id`/`producer_epoch`: InitProducerId's answer."""

    error: int = ErrorCode.NONE
    transactional_id: str = ""
    new: TxnMetadata | None = None
    partition: int = -1  # of __transaction_state
    key: bytes = b""
    value: bytes | None = b""  # None: a tombstone (the id expired)
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    markers: TxnMetadata | None = None
    events: list[str] = field(default_factory=list)

    @property
    def writes(self) -> bool:
        return self.new is not None


def _refuse(code: int) -> Plan:
    return Plan(error=code)


class TransactionCoordinator:
    def __init__(self, config: TxnConfig):
        self.config = config
        self.transactions: dict[str, TxnMetadata] = {}
        self.loaded_partitions: set[int] = set()

    def partition_for(self, transactional_id: str) -> int:
        return records.partition_for(transactional_id, self.config.num_partitions)

    def coordinator_error(self, transactional_id: str) -> int:
        if self.partition_for(transactional_id) not in self.loaded_partitions:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        return ErrorCode.NONE

    # ------------------------------------------------------------ loading

    def load_partition(self, partition: int, rows, now_ms: int) -> list[TxnMetadata]:
        """Rebuild one partition's transactions from its (key, value) records in log order; returns those left
        in PrepareCommit/PrepareAbort, whose markers must be written (again) before they complete."""
        found: dict[str, TxnMetadata | None] = {}
        for key, value in rows:
            if key is None:
                continue
            try:
                txn_id = records.decode_key(key)
                found[txn_id] = None if value is None else records.decode_value(txn_id, value)
            except Exception:  # noqa: BLE001 - a record of a newer or damaged layout is skipped, as Kafka skips
                continue
        for txn_id in [t for t in self.transactions if self.partition_for(t) == partition]:
            del self.transactions[txn_id]
        for txn_id, meta in found.items():
            if meta is not None and meta.state != TxnState.DEAD and self.partition_for(txn_id) == partition:
                self.transactions[txn_id] = meta
        self.loaded_partitions.add(partition)
        return [m for m in self.transactions.values() if self.partition_for(m.transactional_id) == partition
                and m.state.preparing]

    def unload_partition(self, partition: int) -> int:
        """Forget one partition's transactional ids (another broker coordinates them now); returns how many."""
        gone = [txn_id for txn_id in self.transactions if self.partition_for(txn_id) == partition]
        for txn_id in gone:
            del self.transactions[txn_id]
        self.loaded_partitions.discard(partition)
        return len(gone)

    # ------------------------------------------------------------ applying plans

    def apply(self, plan: Plan) -> None:
        """The plan's record is durable: its state holds."""
        if plan.new is not None:
            plan.new.pending = False
            if plan.new.state == TxnState.DEAD:  # its tombstone is written: the id is unknown from now on
                self.transactions.pop(plan.transactional_id, None)
            else:
                self.transactions[plan.transactional_id] = plan.new

    def abandon(self, plan: Plan) -> None:
        """The plan's record could not be written: the old state holds, and may change again."""
        current = self.transactions.get(plan.transactional_id)
        if current is not None:
            current.pending = False

    def _plan(self, old: TxnMetadata | None, new: TxnMetadata, now_ms: int, **extra) -> Plan:
        new.last_update_ms = now_ms
        if old is not None:
            old.pending = True
        plan = Plan(transactional_id=new.transactional_id, new=new, partition=self.partition_for(new.transactional_id),
                    key=records.encode_key(new.transactional_id), value=records.encode_value(new), **extra)
        if old is None or old.state != new.state:
            plan.events.append(f"transactional id {new.transactional_id!r}: {new.state.name} "
                               f"(producer {new.producer_id}, epoch {new.producer_epoch})")
        return plan

    # ------------------------------------------------------------ InitProducerId

    def needs_producer_id(self, transactional_id: str) -> bool:
        """Whether InitProducerId will hand out a new producer id (an unknown id, or an exhausted epoch): the
        shell allocates one first and passes it in."""
        meta = self.transactions.get(transactional_id)
        return meta is None or meta.producer_epoch + 1 >= MAX_PRODUCER_EPOCH

    def init_producer_id(self, now_ms: int, transactional_id: str, timeout_ms: int, expected_id: int = NO_PRODUCER_ID,
                         expected_epoch: int = NO_PRODUCER_EPOCH, new_producer_id: int = NO_PRODUCER_ID) -> Plan:
        if not 0 < timeout_ms <= self.config.max_timeout_ms:
            return _refuse(ErrorCode.INVALID_TRANSACTION_TIMEOUT)
        meta = self.transactions.get(transactional_id)
        if meta is None:
            if new_producer_id < 0:
                raise ValueError("a new transactional id needs a producer id")
            new = TxnMetadata(transactional_id, new_producer_id, 0, timeout_ms)
            return self._plan(None, new, now_ms, producer_id=new_producer_id, producer_epoch=0)
        if meta.pending:
            return _refuse(ErrorCode.CONCURRENT_TRANSACTIONS)
        retry = False
        if expected_id != NO_PRODUCER_ID:  # v3+: the producer says which id and epoch it had (KIP-360)
            retry = (expected_epoch == meta.last_producer_epoch
                     and expected_id in (meta.producer_id, meta.last_producer_id) and meta.state.complete)
            if not retry and (expected_id, expected_epoch) != (meta.producer_id, meta.producer_epoch):
                return _refuse(ErrorCode.PRODUCER_FENCED)
        if meta.state.preparing or meta.state == TxnState.PREPARE_EPOCH_FENCE:
            return _refuse(ErrorCode.CONCURRENT_TRANSACTIONS)
        if meta.state == TxnState.ONGOING:
            # fence the producer that left it open and abort it; the client retries once the abort is done
            plan = self._abort_fenced(meta, now_ms)
            plan.error = ErrorCode.CONCURRENT_TRANSACTIONS
            return plan
        if retry:
            return Plan(producer_id=meta.producer_id, producer_epoch=meta.producer_epoch)
        if meta.producer_epoch + 1 >= MAX_PRODUCER_EPOCH:
            if new_producer_id < 0:
                raise ValueError("an exhausted epoch needs a new producer id")
            producer_id, epoch = new_producer_id, 0
        else:
            producer_id, epoch = meta.producer_id, meta.producer_epoch + 1
        new = meta.copy(producer_id=producer_id, producer_epoch=epoch, timeout_ms=timeout_ms, state=TxnState.EMPTY,
                        partitions=frozenset(), start_ms=-1, last_producer_id=meta.producer_id,
                        last_producer_epoch=meta.producer_epoch)
        return self._plan(meta, new, now_ms, producer_id=producer_id, producer_epoch=epoch)

    # ------------------------------------------------------------ the transaction's partitions

    def _check_producer(self, meta: TxnMetadata | None, producer_id: int, producer_epoch: int) -> int:
        if meta is None or meta.producer_id != producer_id:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING
        if meta.producer_epoch != producer_epoch:
            return ErrorCode.PRODUCER_FENCED
        if meta.pending or meta.state.preparing or meta.state == TxnState.PREPARE_EPOCH_FENCE:
            return ErrorCode.CONCURRENT_TRANSACTIONS
        return ErrorCode.NONE

    def add_partitions(self, now_ms: int, transactional_id: str, producer_id: int, producer_epoch: int,
                       partitions: set[tuple[str, int]]) -> Plan:
        """AddPartitionsToTxn, and AddOffsetsToTxn (the group's __consumer_offsets partition)."""
        meta = self.transactions.get(transactional_id)
        code = self._check_producer(meta, producer_id, producer_epoch)
        if code != ErrorCode.NONE:
            return _refuse(code)
        if meta.state == TxnState.ONGOING and partitions <= meta.partitions:
            return Plan()  # nothing new: nothing to write
        ongoing = meta.state == TxnState.ONGOING
        new = meta.copy(state=TxnState.ONGOING, partitions=(meta.partitions if ongoing else frozenset()) | partitions,
                        start_ms=meta.start_ms if ongoing else now_ms)
        return self._plan(meta, new, now_ms)

    def check_offset_commit(self, transactional_id: str, producer_id: int, producer_epoch: int,
                            offsets_partition: tuple[str, int]) -> int:
        """TxnOffsetCommit: the producer is current and AddOffsetsToTxn put the group's partition in its
        transaction."""
        meta = self.transactions.get(transactional_id)
        code = self._check_producer(meta, producer_id, producer_epoch)
        if code == ErrorCode.NONE and (meta.state != TxnState.ONGOING or offsets_partition not in meta.partitions):
            return ErrorCode.INVALID_TXN_STATE
        return code

    def verify_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                          partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """AddPartitionsToTxn v4+ VerifyOnly (KIP-890): whether each partition is already in the producer's
        transaction, nothing added. Not in it is TRANSACTION_ABORTABLE. A transition being written is not waited
        for, as in Kafka: a partition counts once the record adding it is durable."""
        meta = self.transactions.get(transactional_id)
        if meta is None or meta.producer_id != producer_id:
            code = ErrorCode.INVALID_PRODUCER_ID_MAPPING
        elif meta.producer_epoch != producer_epoch:
            code = ErrorCode.PRODUCER_FENCED
        elif meta.state.preparing:
            code = ErrorCode.CONCURRENT_TRANSACTIONS
        else:
            return {tp: ErrorCode.NONE if tp in meta.partitions else ErrorCode.TRANSACTION_ABORTABLE
                    for tp in partitions}
        return dict.fromkeys(partitions, code)

    # ------------------------------------------------------------ ending

    def end_txn(self, now_ms: int, transactional_id: str, producer_id: int, producer_epoch: int,
                commit: bool) -> Plan:
        meta = self.transactions.get(transactional_id)
        if meta is None or meta.producer_id != producer_id:
            return _refuse(ErrorCode.INVALID_PRODUCER_ID_MAPPING)
        if meta.producer_epoch != producer_epoch:
            return _refuse(ErrorCode.PRODUCER_FENCED)
        if meta.pending:
            return _refuse(ErrorCode.CONCURRENT_TRANSACTIONS)
        done, preparing = ((TxnState.COMPLETE_COMMIT, TxnState.PREPARE_COMMIT) if commit
                           else (TxnState.COMPLETE_ABORT, TxnState.PREPARE_ABORT))
        if meta.state == done:
            return Plan()  # a retry of an EndTxn that already finished
        if meta.state == preparing:
            return _refuse(ErrorCode.CONCURRENT_TRANSACTIONS)
        if meta.state != TxnState.ONGOING:
            return _refuse(ErrorCode.INVALID_TXN_STATE)
        new = meta.copy(state=preparing)
        return self._plan(meta, new, now_ms, markers=new)

    def complete(self, now_ms: int, transactional_id: str) -> Plan:
        """The markers of a PrepareCommit/PrepareAbort transaction are written: plan CompleteCommit/Abort."""
        meta = self.transactions.get(transactional_id)
        if meta is None or not meta.state.preparing:
            return Plan()
        state = TxnState.COMPLETE_COMMIT if meta.state == TxnState.PREPARE_COMMIT else TxnState.COMPLETE_ABORT
        return self._plan(meta, meta.copy(state=state, partitions=frozenset()), now_ms)

    # ------------------------------------------------------------ timeouts

    def expired(self, now_ms: int) -> list[Plan]:
        """Plans aborting (with a fenced epoch) every Ongoing transaction older than its timeout."""
        return [self._abort_fenced(meta, now_ms) for meta in list(self.transactions.values())
                if meta.state == TxnState.ONGOING and not meta.pending and meta.start_ms + meta.timeout_ms <= now_ms]

    def expired_ids(self, now_ms: int) -> list[Plan]:
        """Plans forgetting every transactional id with no transaction under way whose last change is older than
        transactional.id.expiration.ms: Dead, written as a tombstone (Kafka's removeExpiredTransactionalIds). A
        producer that comes back later is a new one (a new producer id)."""
        cutoff = now_ms - self.config.id_expiration_ms
        plans = []
        for meta in list(self.transactions.values()):
            if meta.state.complete and not meta.pending and meta.last_update_ms <= cutoff:
                plan = self._plan(meta, meta.copy(state=TxnState.DEAD, partitions=frozenset()), now_ms)
                plan.value = None
                plans.append(plan)
        return plans

    def _abort_fenced(self, meta: TxnMetadata, now_ms: int) -> Plan:
        epoch = min(meta.producer_epoch + 1, MAX_PRODUCER_EPOCH - 1)
        new = meta.copy(state=TxnState.PREPARE_ABORT, producer_epoch=epoch, last_producer_epoch=meta.producer_epoch)
        plan = self._plan(meta, new, now_ms, markers=new)
        plan.events.append(f"transactional id {meta.transactional_id!r}: aborting (producer {meta.producer_id} "
                           f"fenced at epoch {epoch})")
        return plan

    # ------------------------------------------------------------ describing (DescribeTransactions, ListTransactions)

    def describe(self, transactional_id: str) -> TxnMetadata | None:
        """The id's current state; None when unknown, or Dead (being expired), as Kafka hides those."""
        meta = self.transactions.get(transactional_id)
        return None if meta is None or meta.state == TxnState.DEAD else meta

    def list_transactions(self, now_ms: int, states: set[TxnState] | None, producer_ids: set[int],
                          min_duration_ms: int = -1, id_pattern: re.Pattern | None = None) -> list[TxnMetadata]:
        """The transactions matching every filter given, by transactional id. `states` None and an empty
        `producer_ids` match all; `id_pattern` must match the whole transactional id, as Java's matches().
        `min_duration_ms` >= 0 keeps those whose transaction started more than that long ago; like Kafka it
        compares with the start time as recorded, so an id that never began one (start -1) always passes."""
        return sorted((meta for meta in self.transactions.values()
                       if meta.state != TxnState.DEAD
                       and (states is None or meta.state in states)
                       and (not producer_ids or meta.producer_id in producer_ids)
                       and (min_duration_ms < 0 or now_ms - meta.start_ms > min_duration_ms)
                       and (id_pattern is None or id_pattern.fullmatch(meta.transactional_id))),
                      key=lambda meta: meta.transactional_id)
