"""The Clock port: ManualClock fires due timers in deadline order; LoopClock runs them on the event loop."""

from __future__ import annotations

import asyncio
import time

import pytest

from kafkalite.clock import LoopClock, ManualClock


def test_manual_clock_fires_due_timers_in_deadline_order():
    clock = ManualClock(1000)
    fired = []
    clock.call_later(30, lambda: fired.append(("c", clock.now_ms())))
    clock.call_later(10, lambda: fired.append(("a", clock.now_ms())))
    clock.call_later(10, lambda: fired.append(("b", clock.now_ms())))  # a tie: in the order they were set
    clock.advance(9)
    assert fired == [] and clock.now_ms() == 1009
    clock.advance(21)
    assert fired == [("a", 1010), ("b", 1010), ("c", 1030)]
    assert clock.now_ms() == 1030 and clock.pending() == []


def test_manual_clock_cancel_and_timers_set_by_timers():
    clock = ManualClock()
    fired = []
    cancelled = clock.call_later(5, lambda: fired.append("cancelled"))
    cancelled.cancel()
    clock.call_later(10, lambda: clock.call_later(10, lambda: fired.append(clock.now_ms())))
    clock.call_later(-5, lambda: fired.append("now"))  # a deadline in the past fires at once
    assert clock.pending() == [0, 10]
    clock.advance(0)
    assert fired == ["now"]
    clock.advance(25)  # the timer set at 10 for 20 falls due within this advance
    assert fired == ["now", 20]
    with pytest.raises(ValueError):
        clock.advance(-1)


async def test_loop_clock_is_wall_time_with_loop_timers():
    clock = LoopClock()
    assert abs(clock.now_ms() - time.time() * 1000) < 1000
    done = asyncio.get_running_loop().create_future()
    clock.call_later(1, lambda: done.set_result(clock.now_ms()))
    cancelled = clock.call_later(0, lambda: done.set_result("cancelled"))
    cancelled.cancel()
    assert isinstance(await asyncio.wait_for(done, 5), int)
