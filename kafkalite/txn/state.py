"""One transactional id's state, as Kafka keeps it (TransactionMetadata) and writes it to __transaction_state."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
MAX_PRODUCER_EPOCH = 32767  # Short.MAX_VALUE: an epoch that would reach it gets a new producer id instead


class TxnState(enum.IntEnum):
    """Kafka's TransactionState, with its on-disk status bytes."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def preparing(self) -> bool:
        return self in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT)

    @property
    def complete(self) -> bool:
        return self in (TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)

    @property
    def kafka_name(self) -> str:
        """The name Kafka's admin APIs (DescribeTransactions, ListTransactions) give the state: "PrepareCommit"."""
        return _KAFKA_NAMES[self]

    @classmethod
    def from_kafka_name(cls, name: str) -> "TxnState | None":
        return _BY_KAFKA_NAME.get(name)


_KAFKA_NAMES = {state: "".join(word.capitalize() for word in state.name.split("_")) for state in TxnState}
_BY_KAFKA_NAME = {name: state for state, name in _KAFKA_NAMES.items()}


@dataclass(slots=True)
class TxnMetadata:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState = TxnState.EMPTY
    partitions: frozenset[tuple[str, int]] = frozenset()
    start_ms: int = -1  # when the transaction became Ongoing (its timeout counts from here)
    last_update_ms: int = -1
    # the producer id and epoch before the last bump: a retried InitProducerId (KIP-360) is recognised by them
    last_producer_id: int = NO_PRODUCER_ID
    last_producer_epoch: int = NO_PRODUCER_EPOCH
    pending: bool = field(default=False, compare=False)  # a transition is being written: others must wait

    def copy(self, **changes) -> "TxnMetadata":
        fields = {name: getattr(self, name) for name in self.__slots__ if name != "pending"}
        fields.update(changes)
        return TxnMetadata(**fields)
