"""AddPartitionsToTxn (key 24): versions 0-5, flexible from 3. Field layout from Kafka's
AddPartitionsToTxnRequest/Response. Versions 0-3 are the client's form (one transaction); 4+ the batched form
brokers send (KIP-890): several transactions, each optionally VerifyOnly, and a top-level error code. 5 adds
only the error TRANSACTION_ABORTABLE."""

from kafkalite.protocol.schema import ApiSchema, Array, F

_TOPICS = (
    F("name", "string"),
    F("partitions", Array("int32")),
)

_TOPIC_RESULTS = (
    F("name", "string"),
    F("results_by_partition", [
        F("partition_index", "int32"),
        F("partition_error_code", "int16"),
    ]),
)

API = ApiSchema(
    key=24,
    name="AddPartitionsToTxn",
    min_version=0,
    max_version=5,
    flexible=3,
    request=(
        F("transactions", [
            F("transactional_id", "string"),
            F("producer_id", "int64"),
            F("producer_epoch", "int16"),
            F("verify_only", "bool"),
            F("topics", list(_TOPICS)),
        ], "4+"),
        F("transactional_id", "string", "0-3"),
        F("producer_id", "int64", "0-3"),
        F("producer_epoch", "int16", "0-3"),
        F("topics", list(_TOPICS), "0-3"),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("error_code", "int16", "4+"),
        F("results_by_transaction", [
            F("transactional_id", "string"),
            F("topic_results", list(_TOPIC_RESULTS)),
        ], "4+"),
        F("results_by_topic", list(_TOPIC_RESULTS), "0-3"),
    ),
)
