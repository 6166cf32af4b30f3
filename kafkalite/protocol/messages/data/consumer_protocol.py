"""The consumer protocol: JoinGroup metadata and SyncGroup assignments of protocol type "consumer".

Field layout from Kafka's ConsumerProtocolSubscription and ConsumerProtocolAssignment (versions 0-3, never
flexible), shared with the Java client, librdkafka, kafkajs and aiokafka. Later versions only add fields at the
end, and a reader takes a newer version as the newest it knows.

    Subscription  v0: topics, user_data   v1: + owned_partitions   v2: + generation_id   v3: + rack_id
    Assignment    v0-3: assigned_partitions, user_data (v1-3 change only the Subscription)
"""

from kafkalite.protocol.schema import Array, DataSchema, F

PROTOCOL_TYPE = "consumer"


def _topic_partitions(versions: str):
    return [F("topic", "string", versions), F("partitions", Array("int32"), versions)]


SUBSCRIPTION = DataSchema(
    name="ConsumerProtocolSubscription",
    min_version=0,
    max_version=3,
    flexible=None,
    fields=(
        F("topics", Array("string")),
        F("user_data", "bytes", nullable="0+", default=None),
        F("owned_partitions", _topic_partitions("1+"), "1+"),
        F("generation_id", "int32", "2+", default=-1),
        F("rack_id", "string", "3+", nullable="3+", default=None),
    ),
)

ASSIGNMENT = DataSchema(
    name="ConsumerProtocolAssignment",
    min_version=0,
    max_version=3,
    flexible=None,
    fields=(
        F("assigned_partitions", _topic_partitions("0+")),
        F("user_data", "bytes", nullable="0+", default=None),
    ),
)
