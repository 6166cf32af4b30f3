"""The client's exceptions.

Every Kafka error code has its own class, named after the code (UNKNOWN_TOPIC_OR_PARTITION ->
UnknownTopicOrPartitionError), derived from KafkaError, which carries `.code`, `.name` and `.retriable`.
Network failures derive from the built-in ConnectionError and read as sentences, because the CLI tools
print `str(error)` as it is.
"""

from __future__ import annotations

from kafkalite.protocol.errors import ErrorCode


class KafkaError(Exception):
    """An error the broker returned as an error code (or a client-side error with the same meaning)."""

    code: ErrorCode = ErrorCode.UNKNOWN_SERVER_ERROR

    def __init__(self, message: str = ""):
        self.message = message
        text = f"{self.code.name} ({int(self.code)})"
        super().__init__(f"{text}: {message}" if message else text)

    @property
    def name(self) -> str:
        return self.code.name

    @property
    def retriable(self) -> bool:
        return self.code.retriable


def _class_name(code: ErrorCode) -> str:
    words = code.name.removesuffix("_EXCEPTION").split("_")
    return "".join(w.capitalize() for w in words) + "Error"


ERROR_CLASSES: dict[int, type[KafkaError]] = {}
for _code in ErrorCode:
    if _code == ErrorCode.NONE:
        continue
    _cls = type(_class_name(_code), (KafkaError,), {"code": _code, "__doc__": f"Kafka error {_code.name}."})
    ERROR_CLASSES[int(_code)] = _cls
    globals()[_cls.__name__] = _cls


def error_class(code: int) -> type[KafkaError]:
    return ERROR_CLASSES.get(code, ERROR_CLASSES[-1])


def raise_for_code(code: int, message: str = "") -> None:
    """Raise the exception for a non-zero error code."""
    if code:
        cls = ERROR_CLASSES.get(code)
        if cls is None:
            raise UnknownServerError(f"unknown error code {code}; {message}")  # noqa: F821 (generated)
        raise cls(message)


class KafkaConnectionError(ConnectionError):
    """A broker could not be reached, or a connection broke. Always retriable."""

    retriable = True


class KafkaTimeoutError(TimeoutError):
    """A request or an operation took longer than its deadline."""

    retriable = True


class ClientClosedError(RuntimeError):
    """The producer, consumer or admin client was used after close()."""


class RecordDeserializationError(ValueError):
    """A consumer's key_deserializer or value_deserializer raised. The record stays next in line (every
    read raises again), so nothing after it is skipped unnoticed: seek past it to skip it."""

    def __init__(self, topic: str, partition: int, offset: int, part: str, error: BaseException):
        self.topic, self.partition, self.offset = topic, partition, offset
        super().__init__(f"cannot deserialize the {part} of the record at {topic}-{partition} offset {offset}: "
                         f"{type(error).__name__}: {error}; seek to offset {offset + 1} to skip it")


class TransactionStateError(RuntimeError):
    """A transactional method was called when the producer's transaction state does not allow it (begin twice,
    send or commit outside a transaction, anything on a producer without transactional_id)."""


class TransactionAbortableError(KafkaError):
    """The transaction hit an error that only aborting it clears: call abort_transaction(), then begin again.
    `.cause` is the error that made it so; `.code` is the cause's code."""

    def __init__(self, message: str, cause: BaseException):
        self.cause = cause
        self.code = getattr(cause, "code", ErrorCode.UNKNOWN_SERVER_ERROR)
        super().__init__(f"{message}: {cause}; abort the transaction")


class TransactionAbortedError(RuntimeError):
    """A record of a transaction that was aborted before the record was sent."""


class UnsupportedVersionByBroker(RuntimeError):
    """The broker speaks no version of an API that this client also speaks."""


# Names used often enough to import by name (the generated classes are also module attributes).
UnknownServerError = ERROR_CLASSES[-1]
UnknownTopicOrPartitionError = ERROR_CLASSES[ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]
NotLeaderOrFollowerError = ERROR_CLASSES[ErrorCode.NOT_LEADER_OR_FOLLOWER]
TopicAlreadyExistsError = ERROR_CLASSES[ErrorCode.TOPIC_ALREADY_EXISTS]
OffsetOutOfRangeError = ERROR_CLASSES[ErrorCode.OFFSET_OUT_OF_RANGE]
RebalanceInProgressError = ERROR_CLASSES[ErrorCode.REBALANCE_IN_PROGRESS]
MessageTooLargeError = ERROR_CLASSES[ErrorCode.MESSAGE_TOO_LARGE]
InvalidTopicError = ERROR_CLASSES[ErrorCode.INVALID_TOPIC_EXCEPTION]
# A newer producer with the same transactional_id took over (Kafka's clients raise it for INVALID_PRODUCER_EPOCH
# too): fatal, only close() is left.
ProducerFencedError = ERROR_CLASSES[ErrorCode.PRODUCER_FENCED]
