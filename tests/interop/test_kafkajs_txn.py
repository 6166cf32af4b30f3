"""kafkajs transactions against a live kafkalite broker (tests/interop/node/txn.js): commit and abort across
partitions, a readUncommitted:false consumer while a transaction is open, and sendOffsets; librdkafka
cross-checks what the broker stored."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient

from brokerproc import missing, require_tool
from txn_reading import read_values

pytestmark = pytest.mark.interop

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")
PREFIX = "kjs-txn"


def run_txn_script(bootstrap: str) -> dict:
    node = require_tool("node")
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "kafkajs")):
        missing("kafkajs is not installed (run: cd tests/interop/node && npm install)")
    proc = subprocess.run([node, "txn.js", bootstrap, PREFIX], cwd=NODE_DIR, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, f"kafkajs failed: {proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def read_values_as(bootstrap: str, topic: str, partitions: int, isolation: str) -> list[str]:
    return read_values(bootstrap, topic, partitions, isolation, f"kjs-check-{isolation}")


def test_kafkajs_transactions(broker_process):
    """Checks: a readUncommitted:false kafkajs consumer reads the committed records and, while a transaction
    is open (five fetches later), nothing of it nor of the aborted one; once it commits, its records; each
    record once, offsets increasing per partition. sendOffsets: the group's offsets move with a committed
    transaction, not with an aborted one. librdkafka finds the aborted records in the log (read_uncommitted)
    and not under read_committed, and the same committed offsets."""
    bootstrap = broker_process.bootstrap
    result = run_txn_script(bootstrap)
    committed, aborted, opened = result["committed"], result["aborted"], result["open"]
    assert committed == [f"committed-{i}" for i in range(9)] and len(aborted) == 6 and len(opened) == 3
    assert sorted(result["readWhileOpen"]) == sorted(committed), result["readWhileOpen"]
    read = result["read"]
    assert sorted(r["value"] for r in read) == sorted(committed + opened)
    for p in range(3):
        offsets = [r["offset"] for r in read if r["partition"] == p]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    topic = f"{PREFIX}-a"
    assert sorted(read_values_as(bootstrap, topic, 3, "read_uncommitted")) == sorted(committed + aborted + opened)
    assert sorted(read_values_as(bootstrap, topic, 3, "read_committed")) == sorted(committed + opened)

    steps = result["offsets"]
    assert [s["step"] for s in steps] == ["commit", "abort", "commit"]
    assert steps[0]["committed"] == {"0": 3, "1": 2}
    assert steps[1]["committed"] == {"0": 3, "1": 2}, "offsets of an aborted transaction were committed"
    assert steps[2]["committed"] == {"0": 5, "1": 4}
    assert sorted(read_values_as(bootstrap, f"{PREFIX}-out", 2, "read_committed")) == ["out-0-commit", "out-2-commit"]
    group = f"{PREFIX}-group"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(10)
    assert {tp.partition: tp.offset for tp in listed.topic_partitions} == {0: 5, 1: 4}
