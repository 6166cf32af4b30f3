"""ListGroups (key 16): versions 0-4, flexible from 3. Field layout from Kafka's ListGroupsRequest/Response."""

from kafkalite.protocol.schema import ApiSchema, Array, F

API = ApiSchema(
    key=16,
    name="ListGroups",
    min_version=0,
    max_version=4,
    flexible=3,
    request=(
        F("states_filter", Array("string"), "4+"),
    ),
    response=(
        F("throttle_time_ms", "int32", "1+"),
        F("error_code", "int16"),
        F("groups", [
            F("group_id", "string"),
            F("protocol_type", "string"),
            F("group_state", "string", "4+"),
        ]),
    ),
)
