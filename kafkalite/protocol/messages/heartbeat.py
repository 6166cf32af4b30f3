"""Heartbeat (key 12): versions 0-4, flexible from 4. Field layout from Kafka's HeartbeatRequest/Response."""

from kafkalite.protocol.schema import ApiSchema, F

API = ApiSchema(
    key=12,
    name="Heartbeat",
    min_version=0,
    max_version=4,
    flexible=4,
    request=(
        F("group_id", "string"),
        F("generation_id", "int32"),
        F("member_id", "string"),
        F("group_instance_id", "string", "3+", nullable="3+", default=None),
    ),
    response=(
        F("throttle_time_ms", "int32", "1+"),
        F("error_code", "int16"),
    ),
)
