"""kcat (librdkafka from Debian) against a live kafkalite broker."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from brokerproc import require_tool

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
