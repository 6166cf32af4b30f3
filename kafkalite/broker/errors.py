"""Maps the log's exceptions to the Kafka error codes a client sees."""

from __future__ import annotations

from kafkalite.log import errors as log_errors
from kafkalite.protocol.errors import ErrorCode

_CODES: list[tuple[type[Exception], ErrorCode]] = [
    (log_errors.StorageError, ErrorCode.KAFKA_STORAGE_ERROR),
    (log_errors.OffsetOutOfRange, ErrorCode.OFFSET_OUT_OF_RANGE),
    (log_errors.CorruptRecord, ErrorCode.CORRUPT_MESSAGE),
    (log_errors.RecordTooLarge, ErrorCode.MESSAGE_TOO_LARGE),
    (log_errors.InvalidTimestamp, ErrorCode.INVALID_TIMESTAMP),
    (log_errors.OutOfOrderSequence, ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER),
    (log_errors.InvalidProducerEpoch, ErrorCode.INVALID_PRODUCER_EPOCH),
    (log_errors.InvalidTopicName, ErrorCode.INVALID_TOPIC_EXCEPTION),
    (log_errors.TopicExists, ErrorCode.TOPIC_ALREADY_EXISTS),
    (log_errors.UnknownTopic, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    (log_errors.InvalidPartitions, ErrorCode.INVALID_PARTITIONS),
    (log_errors.InvalidReplicationFactor, ErrorCode.INVALID_REPLICATION_FACTOR),
    (log_errors.InvalidConfig, ErrorCode.INVALID_CONFIG),
    (OSError, ErrorCode.KAFKA_STORAGE_ERROR),
]


def error_code_for(exc: Exception) -> ErrorCode:
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return ErrorCode.UNKNOWN_SERVER_ERROR


class Rejected(Exception):
    """A handler's refusal of one item of a request (a partition, a topic) with a Kafka error code."""

    def __init__(self, code: ErrorCode, message: str | None = None):
        super().__init__(message or code.name)
        self.code = code
        self.message = message
