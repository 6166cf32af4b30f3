"""Records of the internal topic `__transaction_state`, in Kafka's own layouts (TransactionLogKey/Value).

The key is an int16 version (0) and the transactional id; the value an int16 version and the transaction's
state. A null value (tombstone) deletes the transactional id. Version 1 of the value is flexible and adds
tagged fields (KIP-890: previous/next producer id and epoch, the client's transaction version); kafkalite
writes version 0 and reads both.

    key     transactional id
    value   producer id, producer epoch, timeout (ms), status (int8), partitions (nullable: topic, partition
            ids), last update timestamp, start timestamp
"""

from kafkalite.protocol.schema import Array, DataSchema, F

TRANSACTION_LOG_KEY = DataSchema(
    name="TransactionLogKey",
    min_version=0,
    max_version=0,
    flexible=None,
    fields=(F("transactional_id", "string"),),
)

TRANSACTION_LOG_VALUE = DataSchema(
    name="TransactionLogValue",
    min_version=0,
    max_version=1,
    flexible=1,
    fields=(
        F("producer_id", "int64"),
        F("previous_producer_id", "int64", "1+", tag=0, tagged="1+", default=-1),
        F("next_producer_id", "int64", "1+", tag=1, tagged="1+", default=-1),
        F("producer_epoch", "int16"),
        F("next_producer_epoch", "int16", "1+", tag=3, tagged="1+", default=-1),
        F("transaction_timeout_ms", "int32"),
        F("transaction_status", "int8"),
        F("transaction_partitions", [
            F("topic", "string"),
            F("partition_ids", Array("int32")),
        ], nullable="0+"),
        F("transaction_last_update_timestamp_ms", "int64"),
        F("transaction_start_timestamp_ms", "int64"),
        F("client_transaction_version", "int16", "1+", tag=2, tagged="1+", default=0),
    ),
)
