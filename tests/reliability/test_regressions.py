"""Regression tests for the broker bugs the fault harness found (each was a failure of scripts/torture.py)."""

from __future__ import annotations

import os
import resource
import socket
import struct
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from rawclient import RawClient  # noqa: E402

from kafkalite.log.errors import InvalidPartitions  # noqa: E402
from kafkalite.log.manager import MAX_PARTITIONS_PER_REQUEST, LogManager  # noqa: E402
from kafkalite.protocol.errors import ErrorCode  # noqa: E402
from kafkalite.protocol.framing import FrameSplitter  # noqa: E402


# 1. CreateTopics / CreatePartitions asking for 2^31-1 partitions hung the broker (creating directories on
#    the event loop forever, and meta.json would have made every restart try again).

def test_log_manager_caps_partitions_per_request(tmp_path):
    logs = LogManager(str(tmp_path / "data"))
    logs.open()
    with pytest.raises(InvalidPartitions):
        logs.create_topic("huge", MAX_PARTITIONS_PER_REQUEST + 1)
    assert "huge" not in logs.topics()
    logs.create_topic("t", 1)
    with pytest.raises(InvalidPartitions):
        logs.add_partitions("t", 2 + MAX_PARTITIONS_PER_REQUEST)
    assert logs.topic("t").partitions == 1
    logs.close()


@pytest.mark.interop
def test_huge_partition_counts_are_refused_live(broker_process):
    with RawClient(broker_process.port, timeout=10) as client:
        for validate_only in (True, False):
            created = client.request("CreateTopics", 7, {"topics": [{
                "name": "huge", "num_partitions": 0x7FFFFFFF, "replication_factor": 1, "assignments": [],
                "configs": []}], "timeout_ms": 5000, "validate_only": validate_only})
            assert created["topics"][0]["error_code"] == ErrorCode.INVALID_PARTITIONS
        assert harness.create_topic(broker_process.port, "small", 1) == 0
        for validate_only in (True, False):
            grown = client.request("CreatePartitions", 3, {"topics": [{
                "name": "small", "count": 0x7FFFFFFF, "assignments": None}], "timeout_ms": 5000,
                "validate_only": validate_only})
            assert grown["results"][0]["error_code"] == ErrorCode.INVALID_PARTITIONS
    harness.wait_served(broker_process.port, timeout=5)


# 2. A 4-byte size prefix announcing a 100 MB frame made the broker allocate 100 MB at once (per connection).

def test_frame_buffer_follows_received_bytes_not_the_claimed_size():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    splitters = [FrameSplitter() for _ in range(20)]
    for s in splitters:
        assert s.feed(struct.pack(">i", 104857600) + b"\0\1\0\7" + b"x" * 40) == []
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 64 * 1024, f"20 claimed 100 MB frames cost {grown_kb // 1024} MiB"


def test_large_frames_still_arrive_whole_in_any_chunking():
    import random

    rng = random.Random(3)
    for size in [40000, 1 << 20, (1 << 20) + 1, 5 * (1 << 20) + 123]:
        body = rng.randbytes(size)
        data = struct.pack(">i", size) + body + struct.pack(">i", 3) + b"abc"
        splitter, got, pos = FrameSplitter(), [], 0
        while pos < len(data):
            buf = splitter.get_buffer()
            n = min(len(buf), rng.randint(1, 300000), len(data) - pos)
            buf[:n] = data[pos:pos + n]
            pos += n
            got += splitter.buffer_updated(n)
        assert [bytes(f) for f in got] == [body, b"abc"]


@pytest.mark.interop
def test_claimed_huge_frames_do_not_cost_memory_live(broker_process):
    b = harness.Broker.__new__(harness.Broker)
    b.proc = broker_process.proc
    base = b.memory_kb()[1]
    socks = []
    try:
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", broker_process.port))
            s.sendall(struct.pack(">i", 104857600) + b"\0\1\0\7" + b"x" * 40)
            socks.append(s)
        time.sleep(0.5)
        grown = b.memory_kb()[1] - base
        assert grown < 128 * 1024, f"10 claimed 100 MB frames grew the broker by {grown // 1024} MiB"
        harness.wait_served(broker_process.port, timeout=5)
    finally:
        for s in socks:
            s.close()


# 3. A client pipelining Fetch requests without reading the responses grew the broker without bound
#    (every frame of a received chunk was started at once; 3 GB and climbing) and starved other clients.

@pytest.mark.interop
def test_client_that_never_reads_is_bounded(tmp_path):
    result = harness.run_slow_reader(str(tmp_path), seconds=4, fill_mb=8)
    assert result["peak_rss_mb"] - result["base_rss_mb"] < 256, result
    assert result["other_client_served_in_s"] < 5, result
