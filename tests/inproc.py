"""Requests straight to a handler of an in-process broker, through the codec at the version under test."""

from __future__ import annotations

import kafkalite.broker.handlers  # noqa: F401  (registers the handlers)
from kafkalite.broker.context import RequestContext
from kafkalite.broker.registry import HANDLERS
from kafkalite.protocol import wire
from kafkalite.protocol.messages import APIS_BY_NAME


async def call_handler(services, api_name: str, version: int, body: dict) -> dict:
    """One request through the codec at `version` and straight to its handler; the decoded response. The request
    is decoded from a writable buffer, as the server reads it (Produce assigns offsets in the batch in place)."""
    api = APIS_BY_NAME[api_name]
    frame = bytearray(wire.join(wire.encode_request(api.key, version, 1, "test", body)))
    _, request = wire.decode_request(memoryview(frame)[4:])
    ctx = RequestContext(services, api.key, version, 1, "test", "127.0.0.1", 1)
    response = await HANDLERS[api.key](ctx, request)
    encoded = wire.join(wire.encode_response(api.key, version, 1, response))
    return wire.decode_response(api.key, version, memoryview(encoded)[4:])[1]
