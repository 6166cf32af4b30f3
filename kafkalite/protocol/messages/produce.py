"""Produce (key 0): versions 3-10, flexible from 9. Field layout from Kafka's ProduceRequest/Response."""

from kafkalite.protocol.schema import ApiSchema, F, Struct

API = ApiSchema(
    key=0,
    name="Produce",
    min_version=3,
    max_version=10,
    flexible=9,
    # As Kafka 4 does (KAFKA-18659): librdkafka before 2.8 only compresses with gzip, snappy and lz4 when
    # the broker advertises Produce v0, so v0 is advertised. Requests of v0-2 still close the connection.
    advertised_min_version=0,
    request=(
        F("transactional_id", "string", "3+", nullable="3+", default=None),
        F("acks", "int16"),
        F("timeout_ms", "int32"),
        F("topic_data", [
            F("name", "string", "0-12"),
            F("partition_data", [
                F("index", "int32"),
                F("records", "records", nullable="0+"),
            ]),
        ]),
    ),
    response=(
        F("responses", [
            F("name", "string", "0-12"),
            F("partition_responses", [
                F("index", "int32"),
                F("error_code", "int16"),
                F("base_offset", "int64"),
                F("log_append_time_ms", "int64", "2+", default=-1),
                F("log_start_offset", "int64", "5+", default=-1),
                F("record_errors", [
                    F("batch_index", "int32", "8+"),
                    F("batch_index_error_message", "string", "8+", nullable="8+", default=None),
                ], "8+"),
                F("error_message", "string", "8+", nullable="8+", default=None),
                F("current_leader", Struct((
                    F("leader_id", "int32", "10+", default=-1),
                    F("leader_epoch", "int32", "10+", default=-1),
                )), "10+", tag=0, tagged="10+"),
            ]),
        ]),
        F("throttle_time_ms", "int32", "1+", default=0),
        F("node_endpoints", [
            F("node_id", "int32", "10+"),
            F("host", "string", "10+"),
            F("port", "int32", "10+"),
            F("rack", "string", "10+", nullable="10+", default=None),
        ], "10+", tag=0, tagged="10+"),
    ),
)
