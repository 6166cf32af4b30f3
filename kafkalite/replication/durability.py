"""Durability: the fsync threads, and the group-committed flusher that moves a replica's durable end.

Under durability=always the high watermark follows the durable end, so every append asks for a flush; while
one fsync of a partition runs, later appends wait for the next one, which then covers all of them (group
commit). fsyncs run in a few dedicated threads: handing work over is one queue put and one
call_soon_threadsafe back, several times cheaper than asyncio.to_thread's executor round trip.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Awaitable, Callable


class FsyncThreads:
    """Worker threads for the fsyncs that acks=all waits for. Handing work over is one queue put and one
    call_soon_threadsafe back, several times cheaper than asyncio.to_thread's executor round trip, which
    shows in every acks=all produce's latency. A few threads, so partitions on other files fsync in parallel."""

    def __init__(self, count: int = 4):
        self._count = count
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self, fn: Callable[[], object]) -> asyncio.Future:
        """Call fn() in one of the threads; the future gets its result or exception."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self.stop()
            self._loop = loop
            self._threads = [threading.Thread(target=self._work, args=(loop,), name=f"fsync-{i}", daemon=True)
                             for i in range(self._count)]
            for thread in self._threads:
                thread.start()
        future = loop.create_future()
        self._queue.put((future, fn))
        return future

    def stop(self) -> None:
        """Let the threads finish what they hold and exit."""
        for _ in self._threads:
            self._queue.put(None)
        self._threads = []
        self._loop = None

    def _work(self, loop: asyncio.AbstractEventLoop) -> None:
        while (item := self._queue.get()) is not None:
            future, fn = item
            try:
                result = fn()
            except BaseException as e:  # handed to the waiter, which re-raises it
                loop.call_soon_threadsafe(_settle, future, None, e)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)


def _settle(future: asyncio.Future, result, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Flusher:
    """Group commit for one log: `request()` makes sure an fsync covering everything appended so far runs
    soon; `on_durable(end)` is called on the loop with the new durable end after each one, `on_error(e)` when
    an fsync fails (the log is then offline)."""

    __slots__ = ("_flush", "_end", "_in_thread", "_on_durable", "_on_error", "_running", "_again")

    def __init__(self, flush: Callable[[], int], log_end: Callable[[], int],
                 in_thread: Callable[[Callable[[], object]], Awaitable],
                 on_durable: Callable[[int], None], on_error: Callable[[BaseException], None]):
        self._flush = flush
        self._end = log_end
        self._in_thread = in_thread
        self._on_durable = on_durable
        self._on_error = on_error
        self._running: asyncio.Future | None = None
        self._again = False  # appended while an fsync ran: one more round when it ends

    @property
    def busy(self) -> bool:
        return self._running is not None

    def request(self) -> None:
        if self._running is not None:
            self._again = True
            return
        self._start()

    def _start(self) -> None:
        self._again = False
        running = self._running = asyncio.ensure_future(self._in_thread(self._flush))
        running.add_done_callback(self._done)

    def _done(self, future: asyncio.Future) -> None:
        self._running = None
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self._on_error(error)
            return
        durable = future.result()
        self._on_durable(durable)
        if self._again or durable < self._end():
            self._start()
