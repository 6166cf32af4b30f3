"""JoinGroup (key 11): versions 0-7, flexible from 6. Field layout from Kafka's JoinGroupRequest/Response."""

from kafkalite.protocol.schema import ApiSchema, F

API = ApiSchema(
    key=11,
    name="JoinGroup",
    min_version=0,
    max_version=7,
    flexible=6,
    request=(
        F("group_id", "string"),
        F("session_timeout_ms", "int32"),
        F("rebalance_timeout_ms", "int32", "1+", default=-1),
        F("member_id", "string"),
        F("group_instance_id", "string", "5+", nullable="5+", default=None),
        F("protocol_type", "string"),
        F("protocols", [
            F("name", "string"),
            F("metadata", "bytes"),
        ]),
    ),
    response=(
        F("throttle_time_ms", "int32", "2+"),
        F("error_code", "int16"),
        F("generation_id", "int32", default=-1),
        F("protocol_type", "string", "7+", nullable="7+", default=None),
        F("protocol_name", "string", nullable="7+"),
        F("leader", "string"),
        F("member_id", "string"),
        F("members", [
            F("member_id", "string"),
            F("group_instance_id", "string", "5+", nullable="5+", default=None),
            F("metadata", "bytes"),
        ]),
    ),
)
