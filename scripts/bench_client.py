#!/usr/bin/env python3
"""Throughput of kafkalite_client's producer and consumer against aiokafka's, on one kafkalite broker
started by this script, in the same run, with the same settings. Prints records/s and our/aiokafka ratios.

    .venv/bin/python scripts/bench_client.py --messages 100000 --size 100 --partitions 3 --rounds 3

Absolute numbers on a shared machine are noise; the ratios are the result (goal: >= 1.0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time

from kafkalite_client import Admin, Consumer, Producer


def start_broker(data_dir: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "kafkalite", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    for line in proc.stdout:
        match = re.search(r"listening on [^:]+:(\d+)", line)
        if match:
            # Keep draining the broker's output so it never blocks on a full pipe.
            import threading

            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, f"127.0.0.1:{match.group(1)}"
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError("the broker did not start")


async def produce_ours(bootstrap, topic, args, payload) -> float:
    async with Producer(bootstrap, acks=args.acks, linger_ms=args.linger_ms, batch_size=args.batch_size,
                        compression_type=args.compression, enable_idempotence=False) as p:
        start = time.perf_counter()
        for i in range(args.messages):
            await p.enqueue(topic, payload)
        await p.flush()
        return time.perf_counter() - start


async def produce_aiokafka(bootstrap, topic, args, payload) -> float:
    from aiokafka import AIOKafkaProducer

    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=args.acks, linger_ms=args.linger_ms,
                         max_batch_size=args.batch_size, enable_idempotence=False,
                         compression_type=None if args.compression == "none" else args.compression)
    await p.start()
    try:
        start = time.perf_counter()
        for i in range(args.messages):
            await p.send(topic, payload)
        await p.flush()
        return time.perf_counter() - start
    finally:
        await p.stop()


async def consume_ours(bootstrap, topic, args) -> float:
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
        c.assign([(topic, p) for p in range(args.partitions)])
        start = time.perf_counter()
        count = 0
        while count < args.messages:
            for records in (await c.getmany(timeout_ms=1000, max_records=10000)).values():
                count += len(records)
        return time.perf_counter() - start


async def consume_aiokafka(bootstrap, topic, args) -> float:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await c.start()
    try:
        c.assign([TopicPartition(topic, p) for p in range(args.partitions)])
        start = time.perf_counter()
        count = 0
        while count < args.messages:
            for records in (await c.getmany(timeout_ms=1000, max_records=10000)).values():
                count += len(records)
        return time.perf_counter() - start
    finally:
        await c.stop()


async def main(args) -> None:
    payload = os.urandom(args.size // 2).hex().encode()[: args.size]
    with tempfile.TemporaryDirectory(prefix="bench-client-") as data_dir:
        broker, bootstrap = start_broker(data_dir)
        try:
            results: dict[str, list[float]] = {k: [] for k in ("produce ours", "produce aiokafka",
                                                              "consume ours", "consume aiokafka")}
            async with Admin(bootstrap) as admin:
                for r in range(args.rounds):
                    topics = {who: f"bench-{who}-{r}" for who in ("ours", "aiokafka")}
                    for t in topics.values():
                        await admin.create_topic(t, args.partitions)
                    # Alternate who goes first, so neither always meets a warmer (or busier) broker.
                    order = ["ours", "aiokafka"] if r % 2 == 0 else ["aiokafka", "ours"]
                    for who in order:
                        fn = produce_ours if who == "ours" else produce_aiokafka
                        results[f"produce {who}"].append(await fn(bootstrap, topics[who], args, payload))
                    for who in order:
                        # Both consumers read the same topic (written by our producer).
                        fn = consume_ours if who == "ours" else consume_aiokafka
                        results[f"consume {who}"].append(await fn(bootstrap, topics["ours"], args))
        finally:
            broker.terminate()
            broker.wait(20)
    print(f"{args.messages} records of {args.size} bytes, {args.partitions} partitions, acks={args.acks}, "
          f"compression={args.compression}, batch {args.batch_size} B, linger {args.linger_ms} ms, "
          f"best of {args.rounds} rounds")
    best = {k: min(v) for k, v in results.items()}
    for name, seconds in best.items():
        print(f"  {name:18s} {args.messages / seconds:12,.0f} records/s  ({seconds:.2f} s)")
    for what in ("produce", "consume"):
        print(f"  {what} ratio ours/aiokafka: {best[f'{what} aiokafka'] / best[f'{what} ours']:.2f}x")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50000)
    parser.add_argument("--size", type=int, default=100, help="value size in bytes")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--acks", type=int, default=1, choices=[0, 1, -1])
    parser.add_argument("--compression", default="none", choices=["none", "gzip", "snappy", "lz4", "zstd"])
    parser.add_argument("--batch-size", type=int, default=16384)
    parser.add_argument("--linger-ms", type=int, default=5)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
