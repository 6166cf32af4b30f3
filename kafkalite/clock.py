"""Time as a port: the services that run timers take a Clock, so tests drive time instead of sleeping.

`LoopClock` is the real one: wall-clock milliseconds (what Kafka stamps on records and compares with
retention), timers on the running asyncio loop. `ManualClock` is for tests: time moves only in `advance()`,
which fires the timers that fall due, in deadline order (ties in the order they were set).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Callable, Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the epoch."""
        ...

    def call_later(self, delay_ms: int, fn: Callable[[], object]) -> TimerHandle:
        """Call fn() once, `delay_ms` from now (at once if it is not positive), unless cancelled first."""
        ...


class LoopClock:
    """Wall-clock time; timers on the running event loop (call call_later from inside the loop)."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def call_later(self, delay_ms: int, fn: Callable[[], object]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(max(0, delay_ms) / 1000, fn)


class _ManualTimer:
    __slots__ = ("deadline_ms", "fn", "cancelled")

    def __init__(self, deadline_ms: int, fn: Callable[[], object]):
        self.deadline_ms = deadline_ms
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A test clock: `advance(ms)` moves time and fires every timer due by then, in deadline order. A timer set
    by a firing timer fires in the same advance if it falls due within it."""

    def __init__(self, now_ms: int = 0):
        self._now = now_ms
        self._timers: list[tuple[int, int, _ManualTimer]] = []  # (deadline, sequence, timer): a heap
        self._sequence = itertools.count()

    def now_ms(self) -> int:
        return self._now

    def call_later(self, delay_ms: int, fn: Callable[[], object]) -> _ManualTimer:
        timer = _ManualTimer(self._now + max(0, delay_ms), fn)
        heapq.heappush(self._timers, (timer.deadline_ms, next(self._sequence), timer))
        return timer

    def advance(self, ms: int) -> None:
        if ms < 0:
            raise ValueError("time does not go backwards")
        target = self._now + ms
        while self._timers and self._timers[0][0] <= target:
            deadline, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, deadline)
            timer.fn()
        self._now = target

    def pending(self) -> list[int]:
        """Deadlines of the timers not yet fired or cancelled, soonest first."""
        return sorted(t.deadline_ms for _, _, t in self._timers if not t.cancelled)
