"""LeaveGroup (key 13): versions 0-4, flexible from 4. Field layout from Kafka's LeaveGroupRequest/Response."""

from kafkalite.protocol.schema import ApiSchema, F

API = ApiSchema(
    key=13,
    name="LeaveGroup",
    min_version=0,
    max_version=4,
    flexible=4,
    request=(
        F("group_id", "string"),
        F("member_id", "string", "0-2"),
        F("members", [
            F("member_id", "string", "3+"),
            F("group_instance_id", "string", "3+", nullable="3+", default=None),
        ], "3+"),
    ),
    response=(
        F("throttle_time_ms", "int32", "1+"),
        F("error_code", "int16"),
        F("members", [
            F("member_id", "string", "3+"),
            F("group_instance_id", "string", "3+", nullable="3+"),
            F("error_code", "int16", "3+"),
        ], "3+"),
    ),
)
