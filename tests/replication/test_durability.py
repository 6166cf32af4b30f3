"""The fsync threads that durability=always waits on (replication/durability.py)."""

import asyncio
import threading

import pytest

from kafkalite.replication.durability import FsyncThreads


@pytest.mark.timeout(30)
async def test_fsync_threads_hand_back_results_and_errors():
    pool = FsyncThreads(count=2)
    try:
        assert await pool.run(threading.get_ident) != threading.get_ident(), "ran on the event loop"
        assert await asyncio.gather(*(pool.run(lambda i=i: i * i) for i in range(50))) == [i * i for i in range(50)]

        def fails():
            raise OSError(5, "Input/output error")

        with pytest.raises(OSError, match="Input/output"):
            await pool.run(fails)
        assert await pool.run(lambda: "still serving") == "still serving"
    finally:
        pool.stop()
