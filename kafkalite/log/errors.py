"""Typed exceptions of the log store. Each carries the Kafka error code the broker should answer with."""

from __future__ import annotations


class LogError(Exception):
    """Base class of every error the log store raises on purpose."""

    error_code = -1  # UNKNOWN_SERVER_ERROR


class StorageError(LogError):
    """Any OSError on the write path (EIO, ENOSPC, EROFS, ...), or a log taken offline after one.

    Nothing that raised StorageError was acknowledged as stored. Maps to KAFKA_STORAGE_ERROR."""

    error_code = 56


class OffsetOutOfRange(LogError):
    """A read below log_start_offset or beyond log_end_offset."""

    error_code = 1


class CorruptRecord(LogError):
    """The bytes handed to append are not one well-formed v2 batch."""

    error_code = 2


class RecordTooLarge(LogError):
    """A batch larger than max.message.bytes (MESSAGE_TOO_LARGE)."""

    error_code = 10


class InvalidTimestamp(LogError):
    """A CreateTime batch whose timestamps are outside message.timestamp.{before,after}.max.ms."""

    error_code = 32


class OutOfOrderSequence(LogError):
    """An idempotent producer's batch does not continue its sequence (OUT_OF_ORDER_SEQUENCE_NUMBER)."""

    error_code = 45


class InvalidProducerEpoch(LogError):
    """An idempotent producer's epoch is older than the one the log knows (INVALID_PRODUCER_EPOCH)."""

    error_code = 47


class InvalidTxnState(LogError):
    """A transactional batch whose transaction ended while its partition was being verified with the transaction
    coordinator (INVALID_TXN_STATE, KIP-890): appending it would open a transaction nobody ends."""

    error_code = 48


class TransactionCoordinatorFenced(LogError):
    """A transaction marker from a coordinator older than the one that wrote the producer's last marker
    (TRANSACTION_COORDINATOR_FENCED): a deposed coordinator's late marker."""

    error_code = 52


class InvalidTopicName(LogError):
    """Empty, longer than 249 characters, characters outside [a-zA-Z0-9._-], "." or ".." (INVALID_TOPIC_EXCEPTION)."""

    error_code = 17


class TopicExists(LogError):
    error_code = 36


class UnknownTopic(LogError):
    """No such topic or partition (UNKNOWN_TOPIC_OR_PARTITION)."""

    error_code = 3


class InvalidPartitions(LogError):
    error_code = 37


class InvalidReplicationFactor(LogError):
    """More replicas asked for than there are brokers to hold them (INVALID_REPLICATION_FACTOR)."""

    error_code = 38


class InvalidConfig(LogError, ValueError):
    """A bad topic config name or value (INVALID_CONFIG). Also a ValueError, as LogConfig.from_configs promises."""

    error_code = 40


class UnexpectedAppendOffset(LogError):
    """A follower's batch does not start at the log end (append_as_follower): the fetcher must truncate or fetch
    from the log end. Internal to replication; no client sees it."""
