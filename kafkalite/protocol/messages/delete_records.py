"""DeleteRecords (key 21): versions 0-2, flexible from 2. Field layout from Kafka's DeleteRecordsRequest/Response."""

from kafkalite.protocol.schema import ApiSchema, F

API = ApiSchema(
    key=21,
    name="DeleteRecords",
    min_version=0,
    max_version=2,
    flexible=2,
    request=(
        F("topics", [
            F("name", "string"),
            F("partitions", [
                F("partition_index", "int32"),
                F("offset", "int64"),
            ]),
        ]),
        F("timeout_ms", "int32"),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("topics", [
            F("name", "string"),
            F("partitions", [
                F("partition_index", "int32"),
                F("low_watermark", "int64"),
                F("error_code", "int16"),
            ]),
        ]),
    ),
)
