"""Records of the internal topic `__consumer_offsets`, in Kafka's own layouts.

Every key starts with an int16 that says what the record is (0 and 1: an offset commit, 2: group metadata),
followed by that key's fields; the value starts with its own int16 version. A null value (tombstone) deletes
the key. Field layouts from Kafka's OffsetCommitKey/Value and GroupMetadataKey/Value; values are flexible
from version 4.

    offset commit key     group, topic, partition
    offset commit value   v0, 2: offset, metadata, commit timestamp    v1: + expire timestamp
                          v3: offset, leader epoch, metadata, commit timestamp    v4: v3, flexible
    group metadata key    group
    group metadata value  protocol type, generation, protocol, leader, state timestamp (2+), members: member id,
                          group instance id (3+), client id, client host, rebalance timeout (1+), session timeout,
                          subscription, assignment
"""

from kafkalite.protocol.schema import DataSchema, F

OFFSET_COMMIT_KEY_TYPES = (0, 1)
GROUP_METADATA_KEY_TYPE = 2

# Keys have one layout each (version 0 of their schema); the int16 in front is the record type.
OFFSET_COMMIT_KEY = DataSchema(
    name="OffsetCommitKey",
    min_version=0,
    max_version=0,
    flexible=None,
    fields=(
        F("group", "string"),
        F("topic", "string"),
        F("partition", "int32"),
    ),
)

GROUP_METADATA_KEY = DataSchema(
    name="GroupMetadataKey",
    min_version=0,
    max_version=0,
    flexible=None,
    fields=(F("group", "string"),),
)

OFFSET_COMMIT_VALUE = DataSchema(
    name="OffsetCommitValue",
    min_version=0,
    max_version=4,
    flexible=4,
    fields=(
        F("offset", "int64"),
        F("leader_epoch", "int32", "3+", default=-1),
        F("metadata", "string"),
        F("commit_timestamp", "int64"),
        F("expire_timestamp", "int64", "1", default=-1),
    ),
)

GROUP_METADATA_VALUE = DataSchema(
    name="GroupMetadataValue",
    min_version=0,
    max_version=4,
    flexible=4,
    fields=(
        F("protocol_type", "string"),
        F("generation", "int32"),
        F("protocol", "string", nullable="0+"),
        F("leader", "string", nullable="0+"),
        F("current_state_timestamp", "int64", "2+", default=-1),
        F("members", [
            F("member_id", "string"),
            F("group_instance_id", "string", "3+", nullable="3+", default=None),
            F("client_id", "string"),
            F("client_host", "string"),
            F("rebalance_timeout", "int32", "1+", default=-1),
            F("session_timeout", "int32"),
            F("subscription", "bytes"),
            F("assignment", "bytes"),
        ]),
    ),
)
