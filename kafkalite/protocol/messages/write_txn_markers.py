"""WriteTxnMarkers (key 27): versions 0-1, flexible from 1. Field layout from Kafka's WriteTxnMarkersRequest/Response.

Broker to broker: a transaction coordinator asks a partition's leader to append the COMMIT or ABORT marker of a
producer's transaction. Advertised from v1, as Kafka 4 does (it removed v0); v0 is still decoded."""

from kafkalite.protocol.schema import ApiSchema, Array, F

API = ApiSchema(
    key=27,
    name="WriteTxnMarkers",
    min_version=0,
    max_version=1,
    flexible=1,
    advertised_min_version=1,
    request=(
        F("markers", [
            F("producer_id", "int64"),
            F("producer_epoch", "int16"),
            F("transaction_result", "bool"),  # true: COMMIT, false: ABORT
            F("topics", [
                F("name", "string"),
                F("partition_indexes", Array("int32")),
            ]),
            F("coordinator_epoch", "int32"),
        ]),
    ),
    response=(
        F("markers", [
            F("producer_id", "int64"),
            F("topics", [
                F("name", "string"),
                F("partitions", [
                    F("partition_index", "int32"),
                    F("error_code", "int16"),
                ]),
            ]),
        ]),
    ),
)
