"""Our producer and consumer with other clients: messages cross both ways and keys land on the same
partitions (librdkafka with its Java-compatible `murmur2_random` partitioner, kafkajs's default one)."""

import json
import os
import shutil
import subprocess

import confluent_kafka
import pytest

from brokerproc import missing
from kafkalite_client import Consumer, Producer, partition_for_key

pytestmark = pytest.mark.interop

NODE_DIR = os.path.join(os.path.dirname(__file__), "..", "interop", "node")
SCRIPT = os.path.join(os.path.dirname(__file__), "kafkajs_interop.js")
N = 40


async def produce_ours(bootstrap, topic, n=N, codec="lz4"):
    async with Producer(bootstrap, compression_type=codec, linger_ms=2) as p:
        futures = [await p.enqueue(topic, f"ours-{i}", key=f"our-key-{i}", headers={"from": "kafkalite"})
                   for i in range(n)]
        await p.flush()
    return {f"our-key-{i}": f.result().partition for i, f in enumerate(futures)}


async def consume_ours(bootstrap, topic, n, partitions):
    async with Consumer(topic, bootstrap_servers=bootstrap, group_id=f"ours-{topic}", auto_offset_reset="earliest",
                        heartbeat_interval_ms=200) as c:
        got = []
        while len(got) < n:
            batch = await c.getmany(timeout_ms=10000)
            assert batch, f"only {len(got)} of {n} records"
            for records in batch.values():
                got += records
    return got


async def test_confluent_kafka_reads_ours_and_we_read_theirs(bootstrap, new_topic):
    topic = await new_topic(4)
    ours = await produce_ours(bootstrap, topic)

    c = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": f"rdkafka-{topic}",
                                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    seen = {}
    try:
        for _ in range(200):
            if len(seen) == N:
                break
            msg = c.poll(0.2)
            if msg is None or msg.error():
                continue
            seen[msg.key().decode()] = (msg.partition(), msg.value().decode(), dict(msg.headers()))
    finally:
        c.close()
    assert {k: v[0] for k, v in seen.items()} == ours
    assert seen["our-key-7"][1:] == ("ours-7", {"from": b"kafkalite"})

    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random",
                                  "compression.type": "zstd", "linger.ms": 5})
    for i in range(N):
        p.produce(topic, value=f"rd-{i}", key=f"rd-key-{i}")
    assert p.flush(15) == 0
    got = await consume_ours(bootstrap, topic, 2 * N, 4)
    theirs = {r.key.decode(): r.partition for r in got if r.key.startswith(b"rd-")}
    assert len(theirs) == N
    assert all(partition == partition_for_key(key.encode(), 4) for key, partition in theirs.items())
    assert sorted(r.value for r in got if r.key.startswith(b"rd-")) == sorted(f"rd-{i}".encode() for i in range(N))


def run_node(*args: str) -> list:
    node = shutil.which("node")
    if node is None:
        missing("node is not installed")
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "kafkajs")):
        missing("kafkajs is not installed (cd tests/interop/node && npm install)")
    proc = subprocess.run([node, SCRIPT, *args], cwd=NODE_DIR, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"kafkajs failed: {proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


async def test_kafkajs_reads_ours_and_we_read_theirs(bootstrap, new_topic):
    topic = await new_topic(3)
    ours = await produce_ours(bootstrap, topic, N, codec="snappy")
    got = run_node("consume", bootstrap, topic, str(N))
    assert {m["key"]: m["partition"] for m in got} == ours
    assert all(m["headers"] == {"from": "kafkalite"} for m in got)

    theirs = run_node("produce", bootstrap, topic, str(N))
    assert all(m["partition"] == partition_for_key(m["key"].encode(), 3) for m in theirs)
    records = await consume_ours(bootstrap, topic, 2 * N, 3)
    from_js = {r.key.decode(): (r.partition, r.value.decode()) for r in records if r.key.startswith(b"js-")}
    assert from_js == {m["key"]: (m["partition"], f"js-{i}") for i, m in enumerate(theirs)}
    assert all(r.header("from") == b"kafkajs" for r in records if r.key.startswith(b"js-"))
