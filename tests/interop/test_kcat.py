"""kcat (librdkafka from Debian) against a live kafkalite broker."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from brokerproc import require_tool
from kafkalite.protocol import compression
from kafkalite.protocol.record_batch import iter_batches
from rawclient import RawClient

pytestmark = pytest.mark.interop

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def kcat(*args: str, input: str | None = None, timeout: float = 60) -> str:
    proc = subprocess.run(
        [require_tool("kcat"), *args], input=input, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"kcat {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


def produce(bootstrap: str, topic: str, lines: list[str], codec: str, *extra: str) -> None:
    kcat("-b", bootstrap, "-t", topic, "-P", "-K", ":", "-z", codec, "-H", "source=kcat", "-H", f"codec={codec}",
         "-X", "acks=all", *extra, input="\n".join(lines) + "\n")


def consume(bootstrap: str, topic: str, *offset_args: str) -> list[dict]:
    out = kcat("-b", bootstrap, "-t", topic, "-C", "-e", "-J", *(offset_args or ("-o", "beginning")))
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_metadata_lists_the_broker(broker_process):
    meta = json.loads(kcat("-b", broker_process.bootstrap, "-L", "-J"))
    assert [b["id"] for b in meta["brokers"]] == [0]
    assert meta["brokers"][0]["name"].endswith(f":{broker_process.port}")


@pytest.mark.parametrize("codec", CODECS)
def test_produce_and_consume_every_codec(broker_process, codec):
    topic = f"kcat-{codec}"
    lines = [f"key{i % 3}:value-{codec}-{i}" for i in range(200)]
    produce(broker_process.bootstrap, topic, lines, codec, "-X", "enable.idempotence=true")
    got = consume(broker_process.bootstrap, topic)
    assert [(m["key"], m["payload"]) for m in got] == [tuple(line.split(":", 1)) for line in lines]
    assert [m["offset"] for m in got] == list(range(200))
    assert all(m["headers"] == ["source", "kcat", "codec", codec] for m in got)
    # The batches are stored as kcat compressed them (older librdkafka only compresses when the broker
    # advertises Produce v0).
    assert {b.codec for b in stored_batches(broker_process.port, topic)} == {compression.BY_NAME[codec]}


def stored_batches(port: int, topic: str) -> list:
    with RawClient(port) as client:
        response = client.request("Fetch", 12, {
            "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 24,
            "topics": [{"topic": topic, "partitions": [{"partition": 0, "fetch_offset": 0,
                                                        "partition_max_bytes": 1 << 24}]}]})
    return list(iter_batches(response["responses"][0]["partitions"][0]["records"]))


def test_watermarks_and_offsets_by_timestamp(broker_process):
    bootstrap = broker_process.bootstrap
    produce(bootstrap, "kcat-time", [f"a:first-{i}" for i in range(10)], "none")
    time.sleep(0.05)
    middle = int(time.time() * 1000)
    time.sleep(0.05)
    produce(bootstrap, "kcat-time", [f"b:second-{i}" for i in range(5)], "lz4")
    # -Q asks ListOffsets for the first offset at or after the timestamp.
    out = kcat("-b", bootstrap, "-Q", "-t", f"kcat-time:0:{middle}")
    assert "offset 10" in out, out
    got = consume(bootstrap, "kcat-time", "-o", f"s@{middle}")
    assert [m["payload"] for m in got] == [f"second-{i}" for i in range(5)]
    got = consume(bootstrap, "kcat-time", "-o", "-3")  # the last three, relative to the high watermark
    assert [m["offset"] for m in got] == [12, 13, 14]


def test_restart_keeps_acknowledged_messages(broker_process):
    bootstrap = broker_process.bootstrap
    produce(bootstrap, "kcat-restart", [f"k:before-{i}" for i in range(50)], "snappy")
    broker_process.restart(clean=False)  # kill -9
    produce(broker_process.bootstrap, "kcat-restart", [f"k:after-{i}" for i in range(50)], "zstd")
    got = consume(broker_process.bootstrap, "kcat-restart")
    assert [m["payload"] for m in got] == [f"before-{i}" for i in range(50)] + [f"after-{i}" for i in range(50)]
