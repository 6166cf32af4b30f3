"""ListTransactions (key 66): versions 0-2, flexible from 0. Field layout from Kafka's
ListTransactionsRequest/Response (KIP-664; v1 adds DurationFilter, KIP-994; v2 TransactionalIdPattern,
KIP-1152)."""

from kafkalite.protocol.schema import ApiSchema, Array, F

API = ApiSchema(
    key=66,
    name="ListTransactions",
    min_version=0,
    max_version=2,
    flexible=0,
    request=(
        F("state_filters", Array("string")),
        F("producer_id_filters", Array("int64")),
        F("duration_filter", "int64", "1+", default=-1),
        F("transactional_id_pattern", "string", "2+", nullable="2+", default=None),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("error_code", "int16"),
        F("unknown_state_filters", Array("string")),
        F("transaction_states", [
            F("transactional_id", "string"),
            F("producer_id", "int64"),
            F("transaction_state", "string"),
        ]),
    ),
)
