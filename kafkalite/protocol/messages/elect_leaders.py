"""ElectLeaders (key 43): versions 0-2, flexible from 2; v1 adds election_type (KIP-460). Field layout from Kafka's
ElectLeadersRequest/Response."""

from kafkalite.protocol.schema import ApiSchema, Array, F

API = ApiSchema(
    key=43,
    name="ElectLeaders",
    min_version=0,
    max_version=2,
    flexible=2,
    request=(
        F("election_type", "int8", "1+", default=0),  # 0: preferred replica; 1: unclean (any live replica)
        F("topic_partitions", [
            F("topic", "string"),
            F("partitions", Array("int32")),
        ], nullable="0+"),
        F("timeout_ms", "int32", default=60000),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("error_code", "int16", "1+", default=0),
        F("replica_election_results", [
            F("topic", "string"),
            F("partition_result", [
                F("partition_id", "int32"),
                F("error_code", "int16"),
                F("error_message", "string", nullable="0+", default=None),
            ]),
        ]),
    ),
)
