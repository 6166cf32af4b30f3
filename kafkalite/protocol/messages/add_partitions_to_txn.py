"""AddPartitionsToTxn (key 24): versions 0-3, flexible from 3. Field layout from Kafka's
AddPartitionsToTxnRequest/Response. Versions 4+ are the broker-to-broker batched form (KIP-890), not served."""

from kafkalite.protocol.schema import ApiSchema, Array, F

API = ApiSchema(
    key=24,
    name="AddPartitionsToTxn",
    min_version=0,
    max_version=3,
    flexible=3,
    request=(
        F("transactional_id", "string"),
        F("producer_id", "int64"),
        F("producer_epoch", "int16"),
        F("topics", [
            F("name", "string"),
            F("partitions", Array("int32")),
        ]),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("results_by_topic", [
            F("name", "string"),
            F("results_by_partition", [
                F("partition_index", "int32"),
                F("partition_error_code", "int16"),
            ]),
        ]),
    ),
)
