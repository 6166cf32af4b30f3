"""Handlers register here by API name; the dispatcher and ApiVersions read this registry.

A handler is `async def handle(ctx: RequestContext, request: dict) -> dict | None`. It gets the
decoded request body (snake_case field names as declared in kafkalite.protocol.messages) and returns
the response body; fields it leaves out are encoded with their defaults. None means "send no
response" (Produce with acks=0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Awaitable, Callable

from kafkalite.protocol.messages import APIS_BY_NAME

if TYPE_CHECKING:
    from kafkalite.broker.context import RequestContext

Handler = Callable[["RequestContext", dict], Awaitable["dict | None"]]

HANDLERS: dict[int, Handler] = {}


def handler(api_name: str) -> Callable[[Handler], Handler]:
    api = APIS_BY_NAME[api_name]

    def register(fn: Handler) -> Handler:
        if api.key in HANDLERS:
            raise RuntimeError(f"two handlers for {api_name}")
        HANDLERS[api.key] = fn
        return fn

    return register


def supported_api_keys() -> list[dict]:
    """ApiVersions' list, derived from the registry: every API that has a schema and a handler."""
    from kafkalite.protocol.messages import APIS

    return [
        {
            "api_key": key,
            "min_version": api.min_version if api.advertised_min_version is None else api.advertised_min_version,
            "max_version": api.max_version,
        }
        for key, api in APIS.items()
        if key in HANDLERS
    ]
