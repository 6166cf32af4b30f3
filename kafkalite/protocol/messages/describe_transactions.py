"""DescribeTransactions (key 65): version 0, flexible from 0. Field layout from Kafka's
DescribeTransactionsRequest/Response (KIP-664)."""

from kafkalite.protocol.schema import ApiSchema, Array, F

API = ApiSchema(
    key=65,
    name="DescribeTransactions",
    min_version=0,
    max_version=0,
    flexible=0,
    request=(
        F("transactional_ids", Array("string")),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("transaction_states", [
            F("error_code", "int16"),
            F("transactional_id", "string"),
            F("transaction_state", "string"),
            F("transaction_timeout_ms", "int32"),
            F("transaction_start_time_ms", "int64"),
            F("producer_id", "int64"),
            F("producer_epoch", "int16"),
            F("topics", [
                F("topic", "string"),
                F("partitions", Array("int32")),
            ]),
        ]),
    ),
)
