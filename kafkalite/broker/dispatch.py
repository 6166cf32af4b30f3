"""Routes a decoded request to its handler; knows nothing of sockets."""

from __future__ import annotations

from kafkalite.broker import handlers  # noqa: F401  (importing registers every handler)
from kafkalite.broker.context import RequestContext
from kafkalite.broker.registry import HANDLERS, supported_api_keys
from kafkalite.protocol import wire
from kafkalite.protocol.errors import ErrorCode


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
    return await handler(ctx, body)
