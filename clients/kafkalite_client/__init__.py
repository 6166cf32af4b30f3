"""kafkalite's async Python client: Producer, Consumer and Admin over the Kafka wire protocol.

It speaks to any Kafka-compatible broker, reusing kafkalite.protocol for the bytes; it never imports the
broker itself.
"""

from kafkalite_client.admin import (
    Admin,
    GroupDescription,
    GroupListing,
    MemberDescription,
    NewTopic,
    PartitionDescription,
    PartitionLag,
    TopicDescription,
)
from kafkalite_client.assignors import (
    Assignor,
    CooperativeStickyAssignor,
    RangeAssignor,
    RoundRobinAssignor,
)
from kafkalite_client.consumer import Consumer
from kafkalite_client.errors import (
    ClientClosedError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    ProducerFencedError,
    RecordDeserializationError,
    TransactionAbortableError,
    TransactionAbortedError,
    TransactionStateError,
    UnsupportedVersionByBroker,
    error_class,
)
from kafkalite_client.partitioner import murmur2, partition_for_key
from kafkalite_client.producer import Producer
from kafkalite_client.records import ConsumerRecord, OffsetAndMetadata, RecordMetadata, TopicPartition
from kafkalite_client.retry import RetryPolicy
from kafkalite_client.transaction import ConsumerGroupMetadata

__all__ = [
    "Admin", "Assignor", "ClientClosedError", "Consumer", "ConsumerGroupMetadata", "ConsumerRecord",
    "CooperativeStickyAssignor",
    "GroupDescription", "GroupListing", "KafkaConnectionError", "KafkaError", "KafkaTimeoutError",
    "MemberDescription", "NewTopic", "OffsetAndMetadata", "PartitionDescription", "PartitionLag", "Producer",
    "ProducerFencedError", "RangeAssignor", "RecordDeserializationError", "RecordMetadata", "RetryPolicy",
    "RoundRobinAssignor", "TopicDescription", "TopicPartition", "TransactionAbortableError",
    "TransactionAbortedError", "TransactionStateError",
    "UnsupportedVersionByBroker", "error_class", "murmur2", "partition_for_key",
]
