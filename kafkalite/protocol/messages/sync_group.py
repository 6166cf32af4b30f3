"""SyncGroup (key 14): versions 0-5, flexible from 4. Field layout from Kafka's SyncGroupRequest/Response."""

from kafkalite.protocol.schema import ApiSchema, F

API = ApiSchema(
    key=14,
    name="SyncGroup",
    min_version=0,
    max_version=5,
    flexible=4,
    request=(
        F("group_id", "string"),
        F("generation_id", "int32"),
        F("member_id", "string"),
        F("group_instance_id", "string", "3+", nullable="3+", default=None),
        F("protocol_type", "string", "5+", nullable="5+", default=None),
        F("protocol_name", "string", "5+", nullable="5+", default=None),
        F("assignments", [
            F("member_id", "string"),
            F("assignment", "bytes"),
        ]),
    ),
    response=(
        F("throttle_time_ms", "int32", "1+"),
        F("error_code", "int16"),
        F("protocol_type", "string", "5+", nullable="5+", default=None),
        F("protocol_name", "string", "5+", nullable="5+", default=None),
        F("assignment", "bytes"),
    ),
)
