"""Waiters keyed by offset (replication/watermark.py)."""

import asyncio

import pytest

from kafkalite.log.errors import StorageError
from kafkalite.replication.watermark import Watermark


async def test_a_waiter_completes_once_the_value_reaches_its_offset_and_not_before():
    mark = Watermark(3)
    assert mark.reached(3).result() is True
    later, much_later = mark.reached(5), mark.reached(9)
    mark.advance(4)
    assert not later.done()
    mark.advance(5)
    assert later.result() is True and not much_later.done()
    mark.advance(20)
    assert much_later.result() is True


async def test_close_completes_waiters_with_false_and_fail_raises_in_them():
    closed, failed = Watermark(), Watermark()
    waiter = closed.reached(1)
    closed.close()
    assert waiter.result() is False and closed.reached(5).result() is False
    waiter = failed.reached(1)
    failed.fail(StorageError("fsync failed"))
    with pytest.raises(StorageError):
        waiter.result()
    with pytest.raises(StorageError):
        failed.reached(1).result()


async def test_abandoned_waiters_do_not_pile_up():
    mark = Watermark()
    for _ in range(1000):
        mark.reached(10).cancel()  # a long-poll Fetch that timed out
    assert len(mark._waiters) <= 65
    live = mark.reached(10)
    mark.advance(10)
    assert await asyncio.wait_for(live, 1)


async def test_one_future_notified_by_several_watermarks_is_settled_by_the_first_to_pass():
    first, second, gone = Watermark(0), Watermark(0), Watermark(0)
    shared = asyncio.get_running_loop().create_future()
    for mark in (first, second, gone):
        mark.notify(3, shared)
    second.advance(2)
    assert not shared.done() and not second.passed(3)
    second.advance(3)
    assert shared.result() is True and second.passed(3) and not first.passed(3)
    first.advance(5)  # its entry is still in the heap, with a future already done: nothing happens
    gone.close()
    assert gone.passed(3) and first.waiting == 0
    # A replica that went away, or failed, passes at once: the long poll reads it again and answers its error.
    again = asyncio.get_running_loop().create_future()
    gone.notify(99, again)
    assert again.result() is True
