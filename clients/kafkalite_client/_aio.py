"""asyncio helpers. `asyncio.timeout` rather than `asyncio.wait_for`: on Python 3.11, wait_for swallows a
cancellation that races with the awaited thing finishing, and a task that cannot be cancelled never stops."""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait for the event up to `timeout` seconds; True if it is set."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
        return True
    except TimeoutError:
        return False


async def with_timeout(awaitable, timeout: float | None):
    """Await with a deadline; raises TimeoutError."""
    async with asyncio.timeout(timeout):
        return await awaitable
