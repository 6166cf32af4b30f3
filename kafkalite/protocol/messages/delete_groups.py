"""DeleteGroups (key 42): versions 0-2, flexible from 2. Field layout from Kafka's DeleteGroupsRequest/Response."""

from kafkalite.protocol.schema import ApiSchema, Array, F

API = ApiSchema(
    key=42,
    name="DeleteGroups",
    min_version=0,
    max_version=2,
    flexible=2,
    request=(
        F("groups_names", Array("string")),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("results", [
            F("group_id", "string"),
            F("error_code", "int16"),
        ]),
    ),
)
