"""Kafka's transaction coordinator as a pure state machine (no I/O, no asyncio; the asyncio shell is
kafkalite/broker/transactions.py).

Each request is planned (`TransactionCoordinator.init_producer_id`, `add_partitions`, `end_txn`, ...): a plan
either refuses with an error code, or carries the transaction's next state and the `__transaction_state` record
that makes it durable. The shell appends the record, then `apply`s the plan (or `abandon`s it when the append
failed). A transaction in PrepareCommit/PrepareAbort needs its markers written to every partition; once they are,
`complete` plans the move to CompleteCommit/CompleteAbort.
"""

from kafkalite.txn.coordinator import Plan, TransactionCoordinator, TxnConfig
from kafkalite.txn.records import TRANSACTION_STATE_TOPIC
from kafkalite.txn.state import TxnMetadata, TxnState

__all__ = ["TRANSACTION_STATE_TOPIC", "Plan", "TransactionCoordinator", "TxnConfig", "TxnMetadata", "TxnState"]
