"""CreateTopics (key 19): versions 2-7, flexible from 5. Field layout from Kafka's CreateTopicsRequest/Response."""

from kafkalite.protocol.schema import ApiSchema, Array, F

API = ApiSchema(
    key=19,
    name="CreateTopics",
    min_version=2,
    max_version=7,
    flexible=5,
    request=(
        F("topics", [
            F("name", "string"),
            F("num_partitions", "int32"),
            F("replication_factor", "int16"),
            F("assignments", [
                F("partition_index", "int32"),
                F("broker_ids", Array("int32")),
            ]),
            F("configs", [
                F("name", "string"),
                F("value", "string", nullable="0+"),
            ]),
        ]),
        F("timeout_ms", "int32", default=60000),
        F("validate_only", "bool", "1+", default=False),
    ),
    response=(
        F("throttle_time_ms", "int32", "2+"),
        F("topics", [
            F("name", "string"),
            F("topic_id", "uuid", "7+"),
            F("error_code", "int16"),
            F("error_message", "string", "1+", nullable="0+"),
            F("topic_config_error_code", "int16", "5+", tag=0, tagged="5+"),
            F("num_partitions", "int32", "5+", default=-1),
            F("replication_factor", "int16", "5+", default=-1),
            F("configs", [
                F("name", "string", "5+"),
                F("value", "string", "5+", nullable="5+"),
                F("read_only", "bool", "5+"),
                F("config_source", "int8", "5+", default=-1),
                F("is_sensitive", "bool", "5+"),
            ], "5+", nullable="5+"),
        ]),
    ),
)
