"""EndTxn (key 26): versions 0-4, flexible from 3. Field layout from Kafka's EndTxnRequest/Response."""

from kafkalite.protocol.schema import ApiSchema, F

API = ApiSchema(
    key=26,
    name="EndTxn",
    min_version=0,
    max_version=4,
    flexible=3,
    request=(
        F("transactional_id", "string"),
        F("producer_id", "int64"),
        F("producer_epoch", "int16"),
        F("committed", "bool"),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("error_code", "int16"),
    ),
)
