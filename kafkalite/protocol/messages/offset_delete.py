"""OffsetDelete (key 47): version 0, never flexible. Field layout from Kafka's OffsetDeleteRequest/Response."""

from kafkalite.protocol.schema import ApiSchema, F

API = ApiSchema(
    key=47,
    name="OffsetDelete",
    min_version=0,
    max_version=0,
    flexible=None,
    request=(
        F("group_id", "string"),
        F("topics", [
            F("name", "string"),
            F("partitions", [
                F("partition_index", "int32"),
            ]),
        ]),
    ),
    response=(
        F("error_code", "int16"),
        F("throttle_time_ms", "int32"),
        F("topics", [
            F("name", "string"),
            F("partitions", [
                F("partition_index", "int32"),
                F("error_code", "int16"),
            ]),
        ]),
    ),
)
