"""Routes a decoded request to its handler; knows nothing of sockets. At DEBUG it traces every request."""

from __future__ import annotations

import logging
import time

from kafkalite.broker import handlers  # noqa: F401  (importing registers every handler)
from kafkalite.broker.context import RequestContext
from kafkalite.broker.registry import HANDLERS, supported_api_keys
from kafkalite.protocol import wire
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.messages import APIS

log = logging.getLogger("kafkalite.requests")


def unsupported_api_versions_response(correlation_id: int) -> list:
    """The v0 answer to an ApiVersions request of a version we do not speak: error 35 and our ranges."""
    body = {"error_code": ErrorCode.UNSUPPORTED_VERSION, "api_keys": supported_api_keys()}
    return wire.encode_response(wire.API_VERSIONS_KEY, 0, correlation_id, body)


async def dispatch(services, header: wire.RequestHeader, body: dict, client_host: str, connection_id: int):
    handler = HANDLERS.get(header.api_key)
    if handler is None:
        raise wire.UnsupportedRequest(
            f"no handler for API key {header.api_key}", header.api_key, header.api_version, header.correlation_id
        )
    ctx = RequestContext(
        services, header.api_key, header.api_version, header.correlation_id, header.client_id, client_host,
        connection_id,
    )
    if not log.isEnabledFor(logging.DEBUG):  # the hot path pays for one check
        return await handler(ctx, body)
    started = time.perf_counter()
    response = await handler(ctx, body)
    _trace(header, client_host.lstrip("/"), connection_id, (time.perf_counter() - started) * 1000, response)
    return response


def _trace(header: wire.RequestHeader, peer: str, connection_id: int, latency_ms: float, response) -> None:
    api = APIS[header.api_key].name
    errors = sorted({_error_name(code) for code in _error_codes(response)}) if response is not None else []
    outcome = f"errors {', '.join(errors)}" if errors else ("no response (acks=0)" if response is None else "ok")
    log.debug(
        "%s v%d correlation %d from client %r at %s (connection %d): %.2f ms, %s",
        api, header.api_version, header.correlation_id, header.client_id, peer, connection_id, latency_ms, outcome,
        extra={"api": api, "api_version": header.api_version, "correlation_id": header.correlation_id,
               "client_id": header.client_id, "peer": peer, "connection": connection_id,
               "latency_ms": round(latency_ms, 3), "errors": errors},
    )


def _error_codes(value):
    """Every non-zero error_code in a response body, however deeply nested."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "error_code":
                if item:
                    yield item
            elif isinstance(item, (dict, list)):
                yield from _error_codes(item)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)):
                yield from _error_codes(item)


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)
