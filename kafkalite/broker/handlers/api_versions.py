"""ApiVersions (key 18): versions 0-4 (any other version gets error 35 in v0, from the server)."""

from kafkalite.broker.registry import handler, supported_api_keys


@handler("ApiVersions")
async def handle(ctx, request):
    return {"error_code": 0, "api_keys": supported_api_keys(), "throttle_time_ms": 0}
