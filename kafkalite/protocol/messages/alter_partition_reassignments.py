"""AlterPartitionReassignments (key 45): version 0, flexible. Field layout from Kafka's
AlterPartitionReassignmentsRequest/Response (KIP-455)."""

from kafkalite.protocol.schema import ApiSchema, Array, F

API = ApiSchema(
    key=45,
    name="AlterPartitionReassignments",
    min_version=0,
    max_version=0,
    flexible=0,
    request=(
        F("timeout_ms", "int32", default=60000),
        F("topics", [
            F("name", "string"),
            F("partitions", [
                F("partition_index", "int32"),
                F("replicas", Array("int32"), nullable="0+", default=None),  # null: cancel a pending reassignment
            ]),
        ]),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("error_code", "int16"),
        F("error_message", "string", nullable="0+", default=None),
        F("responses", [
            F("name", "string"),
            F("partitions", [
                F("partition_index", "int32"),
                F("error_code", "int16"),
                F("error_message", "string", nullable="0+", default=None),
            ]),
        ]),
    ),
)
