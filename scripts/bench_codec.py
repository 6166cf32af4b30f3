"""Codec cost on the hot path: decode a Produce request and encode a Fetch response around one batch of
1 KiB, 1 MiB and 16 MiB. Decode should cost the same at every size (the batch is a view, not a copy)
and encode should splice the stored batch objects into the output instead of copying them.

    .venv/bin/python scripts/bench_codec.py
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kafkalite.protocol import wire  # noqa: E402
from kafkalite.protocol.messages import APIS_BY_NAME  # noqa: E402
from kafkalite.protocol.record_batch import build_batch  # noqa: E402

PRODUCE = APIS_BY_NAME["Produce"]
FETCH = APIS_BY_NAME["Fetch"]
PRODUCE_VERSION = 9  # flexible, what current librdkafka sends
FETCH_VERSION = 12


def batch_of(size: int) -> bytes:
    """One v2 batch of about `size` bytes (64 KiB records, so building it stays cheap)."""
    record = min(size, 64 * 1024)
    return build_batch([(None, os.urandom(16) * (record // 16))] * max(1, size // record))


def per_op_us(fn, min_seconds: float = 0.3) -> float:
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / n * 1e6
        n *= 2


def bench(size: int) -> dict:
    batch = batch_of(size)
    produce = {
        "acks": -1,
        "timeout_ms": 30000,
        "topic_data": [{"name": "bench", "partition_data": [{"index": 0, "records": batch}]}],
    }
    # What the frame splitter hands the broker: a memoryview over the received bytearray.
    frame = memoryview(bytearray(wire.join(wire.encode_request(PRODUCE.key, PRODUCE_VERSION, 1, "bench", produce))[4:]))
    _, decoded = wire.decode_request(frame)
    records = decoded["topic_data"][0]["partition_data"][0]["records"]
    produce_zero_copy = records.obj is frame.obj and len(records) == len(batch)

    # Stored batches as the log would return them: 1 MiB of them (or one batch when larger).
    stored = [batch] * max(1, (1 << 20) // len(batch)) if size < (1 << 20) else [batch]
    fetch = {
        "session_id": 0,
        "responses": [{"topic": "bench", "partitions": [
            {"partition_index": 0, "error_code": 0, "high_watermark": 10, "records": stored},
        ]}],
    }
    parts = wire.encode_response(FETCH.key, FETCH_VERSION, 1, fetch)
    fetch_zero_copy = sum(1 for p in parts if any(p is s for s in stored)) == len(stored)
    fetch_bytes = sum(len(p) for p in parts)

    return {
        "batch": size,
        "decode_us": per_op_us(lambda: wire.decode_request(frame)),
        "produce_zero_copy": produce_zero_copy,
        "fetch_batches": len(stored),
        "fetch_bytes": fetch_bytes,
        "encode_us": per_op_us(lambda: wire.encode_response(FETCH.key, FETCH_VERSION, 1, fetch)),
        "fetch_zero_copy": fetch_zero_copy,
    }


def human(n: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.0f} {unit}"
    return f"{n} B"


def main() -> None:
    rows = [bench(size) for size in (1 << 10, 1 << 20, 16 << 20)]
    print(f"Produce v{PRODUCE_VERSION} decode / Fetch v{FETCH_VERSION} encode, Python {sys.version.split()[0]}")
    print(f"{'batch':>8} | {'decode Produce':>14} | {'batch copied':>12} | {'Fetch carries':>20}"
          f" | {'encode Fetch':>12} | {'batches copied':>14}")
    print("-" * 97)
    for r in rows:
        carries = f"{r['fetch_batches']} x {human(r['batch'])}"
        print(
            f"{human(r['batch']):>8} | {r['decode_us']:>11.1f} us | {'no' if r['produce_zero_copy'] else 'YES':>12} | "
            f"{carries:>20} | {r['encode_us']:>9.1f} us | {'no' if r['fetch_zero_copy'] else 'YES':>14}"
        )
    if not all(r["produce_zero_copy"] and r["fetch_zero_copy"] for r in rows):
        sys.exit("batch bytes were copied")


if __name__ == "__main__":
    main()
