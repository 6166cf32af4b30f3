"""The broker's periodic housekeeping: retention and checkpoints run while producers keep appending."""

from __future__ import annotations

import asyncio
import time

import pytest

from kafkalite.broker.broker import Broker
from kafkalite.config import BrokerConfig
from kafkalite.protocol.record_batch import build_batch


@pytest.mark.timeout(60)
async def test_retention_runs_periodically_beside_appends(tmp_path):
    config = BrokerConfig(data_dir=str(tmp_path))
    config.set("offsets.topic.num.partitions", 1)
    config.set("log.retention.check.interval.ms", 100)
    broker = Broker(config)
    await broker.start()
    try:
        broker.logs.create_topic("old", 1, {"segment.bytes": "2048", "retention.ms": "60000"})
        plog = broker.logs.partition("old", 0)
        old = int(time.time() * 1000) - 3_600_000
        for i in range(50):  # an hour old: every closed segment is past retention.ms
            plog.append(bytearray(build_batch([(None, b"x" * 200)], timestamps=old)))
        deadline = time.monotonic() + 10
        while plog.log_start_offset == 0 and time.monotonic() < deadline:
            # Keep appending while housekeeping runs: it must not disturb the appends.
            plog.append(bytearray(build_batch([(None, b"y" * 200)], timestamps=old)))
            await asyncio.sleep(0.02)
        assert plog.log_start_offset > 0, "retention never ran"
        end = plog.log_end_offset
        assert plog.read(plog.log_start_offset, 1 << 20), "what is left must still be readable"
        assert plog.segment_count >= 1 and end > plog.log_start_offset
    finally:
        await broker.stop()
