"""Maps the log's exceptions to the Kafka error codes a client sees."""

from __future__ import annotations

from kafkalite.log import errors as log_errors
from kafkalite.protocol.errors import ErrorCode

def error_code_for(exc: Exception) -> ErrorCode:
    """Each log error carries its Kafka code; any other OSError is the storage failing."""
    if isinstance(exc, log_errors.LogError):
        return ErrorCode(exc.error_code)
    if isinstance(exc, OSError):
        return ErrorCode.KAFKA_STORAGE_ERROR
    return ErrorCode.UNKNOWN_SERVER_ERROR


class Rejected(Exception):
    """A handler's refusal of one item of a request (a partition, a topic) with a Kafka error code."""

    def __init__(self, code: ErrorCode, message: str | None = None):
        super().__init__(message or code.name)
        self.code = code
        self.message = message
