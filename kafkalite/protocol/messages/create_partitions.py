"""CreatePartitions (key 37): versions 0-3, flexible from 2. Field layout from Kafka's
CreatePartitionsRequest/Response."""

from kafkalite.protocol.schema import ApiSchema, Array, F

API = ApiSchema(
    key=37,
    name="CreatePartitions",
    min_version=0,
    max_version=3,
    flexible=2,
    request=(
        F("topics", [
            F("name", "string"),
            F("count", "int32"),
            F("assignments", [
                F("broker_ids", Array("int32")),
            ], nullable="0+"),
        ]),
        F("timeout_ms", "int32"),
        F("validate_only", "bool"),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("results", [
            F("name", "string"),
            F("error_code", "int16"),
            F("error_message", "string", nullable="0+", default=None),
        ]),
    ),
)
