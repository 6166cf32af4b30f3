"""Records of `__transaction_state`: kafkalite's view of Kafka's TransactionLogKey/Value (declared as data
schemas in kafkalite.protocol.messages.data.transaction_state). kafkalite writes value version 0.

A transactional id's partition is abs(Java String.hashCode(id)) % transaction.state.log.num.partitions, as in
Kafka (the same hash as consumer groups).
"""

from __future__ import annotations

from kafkalite.group import partition_for
from kafkalite.protocol.codec import decode_data, encode_data
from kafkalite.protocol.messages.data.transaction_state import TRANSACTION_LOG_KEY, TRANSACTION_LOG_VALUE
from kafkalite.txn.state import TxnMetadata, TxnState

TRANSACTION_STATE_TOPIC = "__transaction_state"
KEY_VERSION = 0
VALUE_VERSION = 0

__all__ = ["TRANSACTION_STATE_TOPIC", "decode_key", "decode_value", "encode_key", "encode_value", "partition_for"]


def encode_key(transactional_id: str) -> bytes:
    return encode_data(TRANSACTION_LOG_KEY, KEY_VERSION, {"transactional_id": transactional_id})


def decode_key(data) -> str:
    return decode_data(TRANSACTION_LOG_KEY, data)[1]["transactional_id"]


def encode_value(meta: TxnMetadata) -> bytes:
    by_topic: dict[str, list[int]] = {}
    for topic, index in sorted(meta.partitions):
        by_topic.setdefault(topic, []).append(index)
    return encode_data(TRANSACTION_LOG_VALUE, VALUE_VERSION, {
        "producer_id": meta.producer_id,
        "producer_epoch": meta.producer_epoch,
        "transaction_timeout_ms": meta.timeout_ms,
        "transaction_status": int(meta.state),
        # Kafka writes null partitions for a transaction with none (Empty, Complete*)
        "transaction_partitions": [{"topic": t, "partition_ids": ids} for t, ids in by_topic.items()] or None,
        "transaction_last_update_timestamp_ms": meta.last_update_ms,
        "transaction_start_timestamp_ms": meta.start_ms,
    })


def decode_value(transactional_id: str, data) -> TxnMetadata:
    _, v = decode_data(TRANSACTION_LOG_VALUE, data)
    partitions = frozenset((p["topic"], i) for p in v["transaction_partitions"] or () for i in p["partition_ids"])
    return TxnMetadata(transactional_id, v["producer_id"], v["producer_epoch"], v["transaction_timeout_ms"],
                       TxnState(v["transaction_status"]), partitions, v["transaction_start_timestamp_ms"],
                       v["transaction_last_update_timestamp_ms"],
                       last_producer_id=v["previous_producer_id"])
