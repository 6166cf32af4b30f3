"""Waiters keyed by offset: a `Watermark` is one partition's high watermark or log end, and its waiters.

acks=all waits until the high watermark passes its batch; a long-poll Fetch waits until the high watermark
(a follower: the log end) passes its fetch offset. These are the only ways they wait. A waiter is a future
completed (with True) once the value reaches its offset, or (with False) when the replica goes away; a failed
replica (its fsync failed) fails every waiter with the storage error.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

_order = itertools.count()  # ties between equal offsets complete in the order they were asked


class Watermark:
    __slots__ = ("value", "_waiters", "_error", "_closed")

    def __init__(self, value: int = 0):
        self.value = value
        self._waiters: list[tuple[int, int, asyncio.Future]] = []  # a heap by offset
        self._error: BaseException | None = None
        self._closed = False

    def reached(self, offset: int) -> asyncio.Future:
        """A future done once the value is at least `offset` (at once if it already is)."""
        future = asyncio.get_running_loop().create_future()
        if self._error is not None:
            future.set_exception(self._error)
        elif self._closed:
            future.set_result(False)
        elif self.value >= offset:
            future.set_result(True)
        else:
            self._wait(offset, future)
        return future

    def notify(self, offset: int, future: asyncio.Future) -> None:
        """Complete `future` with True once the value is at least `offset` (or the replica is gone or failed),
        unless something else completes it first: one future shared by every partition of a long poll, which
        then asks `passed` of each."""
        if future.done():
            return
        if self.passed(offset):
            future.set_result(True)
        else:
            self._wait(offset, future)

    def _wait(self, offset: int, future: asyncio.Future) -> None:
        heapq.heappush(self._waiters, (offset, next(_order), future))
        if len(self._waiters) > 64:
            self._prune()

    def passed(self, offset: int) -> bool:
        """The value is at least `offset`, or there is nothing more to wait for (closed, failed)."""
        return self.value >= offset or self._closed or self._error is not None

    def advance(self, value: int) -> None:
        """Set the value (it may go down after a truncation) and complete every waiter it now reaches."""
        self.value = value
        waiters = self._waiters
        while waiters and waiters[0][0] <= value:
            future = heapq.heappop(waiters)[2]
            if not future.done():
                future.set_result(True)

    def fail(self, error: BaseException) -> None:
        """The replica is offline: every waiter, now and later, gets `error`."""
        self._error = error
        for _, _, future in self._drain():
            if not future.done():  # (a long poll's future is here twice if a fetch names a partition twice)
                future.set_exception(error)

    def close(self) -> None:
        """The replica is gone (topic deleted, leadership moved): waiters complete with False."""
        self._closed = True
        for _, _, future in self._drain():
            if not future.done():
                future.set_result(False)

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, f in self._waiters if not f.done())

    def _drain(self):
        waiters, self._waiters = self._waiters, []
        return [w for w in waiters if not w[2].done()]

    def _prune(self) -> None:
        # Fetches that timed out leave cancelled futures behind; drop them before they pile up.
        live = [w for w in self._waiters if not w[2].done()]
        if len(live) < len(self._waiters):
            heapq.heapify(live)
            self._waiters = live
