"""kafkajs (Node.js, with kafkajs-snappy and kafkajs-lz4) against a live kafkalite broker."""

from __future__ import annotations

import json
import os
import subprocess
from collections import defaultdict

import pytest

from brokerproc import missing, require_tool

pytestmark = pytest.mark.interop

NODE_DIR = os.path.join(os.path.dirname(__file__), "node")
CODECS = ["none", "gzip", "snappy", "lz4"]
PER_CODEC = 50


def run_node(*args: str) -> dict:
    node = require_tool("node")
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "kafkajs")):
        missing("kafkajs is not installed (run: cd tests/interop/node && npm install)")
    proc = subprocess.run([node, "roundtrip.js", *args], cwd=NODE_DIR, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"kafkajs failed: {proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_kafkajs_produces_and_consumes(broker_process):
    produced = run_node(broker_process.bootstrap, "kafkajs-topic", "produce")
    assert produced["created"] is True
    assert all(s["errorCode"] == 0 for s in produced["sent"])
    total = len(CODECS) * PER_CODEC + 1
    high = {int(p["partition"]): int(p["high"]) for p in produced["offsets"]}
    assert sum(high.values()) == total
    # Only the one message sent after the timestamp lies at or after it.
    at_time = {int(p["partition"]): int(p["offset"]) for p in produced["byTime"]}
    assert sum(high[p] - at_time[p] for p in high) == 1

    # A broker restart in the middle keeps every acknowledged message.
    broker_process.restart(clean=False)
    got = run_node(broker_process.bootstrap, "kafkajs-topic", str(total))["got"]
    assert len(got) == total
    values = sorted(m["value"] for m in got)
    expected = sorted([f"{c}-{i}" for c in CODECS for i in range(PER_CODEC)] + ["late"])
    assert values == expected
    # Same key, same partition, and per-key order is production order.
    partitions_of_key = defaultdict(set)
    by_partition = defaultdict(list)
    for m in got:
        partitions_of_key[m["key"]].add(m["partition"])
        by_partition[m["partition"]].append(m)
    assert all(len(p) == 1 for p in partitions_of_key.values())
    for msgs in by_partition.values():
        offsets = [int(m["offset"]) for m in msgs]
        assert offsets == sorted(offsets) == list(range(offsets[0], offsets[0] + len(offsets)))
    for m in got:
        if m["key"] != "late":
            codec, seq = m["value"].rsplit("-", 1)
            assert m["headers"] == {"codec": codec, "seq": seq}
