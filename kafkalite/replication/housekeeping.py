"""Log maintenance off the event loop: retention, compaction and checkpoints, one partition at a time.

Each round works on a partition in a worker thread (PartitionLog.housekeep) and must be the only one changing it
meanwhile. Writers that arrive while it runs wait at the partition's Turnstile, then pass one at a time in the
order they came (an idempotent producer's batches must land in the order it sent them); readers go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Callable, Iterable

from kafkalite.log.errors import StorageError
from kafkalite.log.partition import PartitionLog

log = logging.getLogger("kafkalite.housekeeping")


class Turnstile:
    """One partition's writers in arrival order around housekeeping, which works on the partition in a worker
    thread (PartitionLog.housekeep) and must be the only one changing it meanwhile. Writers that arrive while
    it runs wait, then pass one at a time in the order they came: an idempotent producer's batches must land
    in the order it sent them. An idle turnstile costs a writer one check (busy())."""

    __slots__ = ("_last",)

    def __init__(self):
        self._last: asyncio.Future | None = None  # done once everyone queued so far has passed

    def busy(self) -> bool:
        return self._last is not None and not self._last.done()

    async def pass_through(self) -> None:
        """Wait for everyone ahead. The caller must then make its change before its next await: the next in
        line runs only after that."""
        prev, mine = self._join()
        await self._wait_for(prev, mine)
        _set_done(mine)

    @contextlib.asynccontextmanager
    async def hold(self):
        """Wait for everyone ahead, then keep everyone behind waiting until the block ends."""
        prev, mine = self._join()
        await self._wait_for(prev, mine)
        try:
            yield
        finally:
            _set_done(mine)

    def _join(self) -> tuple[asyncio.Future | None, asyncio.Future]:
        prev, self._last = self._last, asyncio.get_running_loop().create_future()
        return prev, self._last

    @staticmethod
    async def _wait_for(prev: asyncio.Future | None, mine: asyncio.Future) -> None:
        """Wait until `prev` is done; if cancelled meanwhile, `mine` completes when `prev` does."""
        if prev is None or prev.done():
            return
        try:
            await asyncio.shield(prev)
        except asyncio.CancelledError:
            # Our place in line passes on only when those ahead are done, not now.
            prev.add_done_callback(lambda _: _set_done(mine))
            raise


def _set_done(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class Housekeeping:
    """The turnstiles of the logs, and the rounds that hold them."""

    def __init__(self, logs: Callable[[], Iterable[PartitionLog]], now_ms: Callable[[], int]):
        self._logs = logs  # the logs to keep, in the order a round visits them
        self._now_ms = now_ms
        self._turnstiles: dict[PartitionLog, Turnstile] = {}
        self._work: asyncio.Future | None = None  # the worker thread, which cannot be cancelled
        self._working_on: PartitionLog | None = None

    async def run_round(self) -> None:
        """One round over every log. Meanwhile the event loop serves everything else."""
        now_ms = self._now_ms()
        self._turnstiles = {p: t for p, t in self._turnstiles.items() if not p.closed or t.busy()}
        for plog in list(self._logs()):
            async with self.turnstile(plog).hold():
                if plog.closed or plog.failed:  # deleted or failed while we waited
                    continue
                self._working_on = plog
                work = self._work = asyncio.ensure_future(asyncio.to_thread(plog.housekeep, now_ms))
                try:
                    await asyncio.shield(work)
                except asyncio.CancelledError:
                    await asyncio.wait([work])  # the thread still owns the log: let it finish first
                    raise
                except StorageError as e:
                    log.error("housekeeping of %s failed: %s", plog.directory, e)
                finally:
                    self._work = self._working_on = None
                    plog.close_retired()  # on the loop, so no read holds a removed segment

    @property
    def working(self) -> bool:
        return self._work is not None

    def turnstile(self, plog: PartitionLog) -> Turnstile:
        turnstile = self._turnstiles.get(plog)
        if turnstile is None:
            turnstile = self._turnstiles[plog] = Turnstile()
        return turnstile

    async def wait_writable(self, plog: PartitionLog) -> bool:
        """Before changing a log: wait while housekeeping works on it, keeping writers in arrival order. The
        caller must change the log before its next await. True if it waited: the caller then looks the
        partition up again, as its topic may have been deleted meanwhile. Without housekeeping this returns
        at once."""
        turnstile = self._turnstiles.get(plog)
        if turnstile is None or not turnstile.busy():
            return False
        await turnstile.pass_through()
        return True

    async def wait_done_with(self, logs: list[PartitionLog]) -> None:
        """Before closing logs (DeleteTopics): wait until housekeeping works on none of them."""
        while self._work is not None and self._working_on in logs:
            await asyncio.wait([self._work])
