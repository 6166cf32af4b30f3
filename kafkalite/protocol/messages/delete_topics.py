"""DeleteTopics (key 20): versions 1-6, flexible from 4. Field layout from Kafka's DeleteTopicsRequest/Response."""

from kafkalite.protocol.schema import ApiSchema, Array, F

API = ApiSchema(
    key=20,
    name="DeleteTopics",
    min_version=1,
    max_version=6,
    flexible=4,
    request=(
        F("topics", [
            F("name", "string", "6+", nullable="6+", default=None),
            F("topic_id", "uuid", "6+"),
        ], "6+"),
        F("topic_names", Array("string"), "0-5"),
        F("timeout_ms", "int32"),
    ),
    response=(
        F("throttle_time_ms", "int32", "1+"),
        F("responses", [
            F("name", "string", nullable="6+"),
            F("topic_id", "uuid", "6+"),
            F("error_code", "int16"),
            F("error_message", "string", "5+", nullable="5+", default=None),
        ]),
    ),
)
