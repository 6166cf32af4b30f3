"""ListPartitionReassignments (key 46): version 0, flexible. Field layout from Kafka's
ListPartitionReassignmentsRequest/Response (KIP-455)."""

from kafkalite.protocol.schema import ApiSchema, Array, F

API = ApiSchema(
    key=46,
    name="ListPartitionReassignments",
    min_version=0,
    max_version=0,
    flexible=0,
    request=(
        F("timeout_ms", "int32", default=60000),
        F("topics", [
            F("name", "string"),
            F("partition_indexes", Array("int32")),
        ], nullable="0+", default=None),  # null: every reassignment in progress
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("error_code", "int16"),
        F("error_message", "string", nullable="0+", default=None),
        F("topics", [
            F("name", "string"),
            F("partitions", [
                F("partition_index", "int32"),
                F("replicas", Array("int32")),
                F("adding_replicas", Array("int32")),
                F("removing_replicas", Array("int32")),
            ]),
        ]),
    ),
)
