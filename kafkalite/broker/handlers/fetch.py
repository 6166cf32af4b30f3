"""Fetch (key 1): versions 4-12. Long poll; fetch sessions are declined (session_id 0).

Consumers read whole batches below the high watermark, and a long poll waits until the high watermark of a
requested partition passes its fetch offset (replication/watermark.py), or max_wait_ms.
"""

from __future__ import annotations

import asyncio

from kafkalite.broker.errors import error_code_for
from kafkalite.broker.registry import handler
from kafkalite.log.errors import LogError
from kafkalite.replication.replica_manager import NotServed


def read_partitions(replicas, request) -> tuple[list, int, list]:
    """One pass over every requested partition; returns the response topics, the bytes found, and the
    (replica, fetch offset) of each partition that was served, for the long poll."""
    budget = request["max_bytes"]
    total = 0
    topics = []
    served = []
    for topic in request["topics"]:
        name = topic["topic"]
        partitions = []
        topics.append({"topic": name, "partitions": partitions})
        for part in topic["partitions"]:
            index = part["partition"]
            # Empty partitions carry zero-length records, never null: some clients choke on null.
            resp = {"partition_index": index, "error_code": 0, "high_watermark": -1, "last_stable_offset": -1,
                    "log_start_offset": -1, "aborted_transactions": None, "records": b""}
            partitions.append(resp)
            try:
                replica = replicas.leader(name, index)
            except NotServed as e:
                resp["error_code"] = e.code
                continue
            plog = replica.log
            resp["high_watermark"] = resp["last_stable_offset"] = replica.state.high_watermark
            resp["log_start_offset"] = plog.log_start_offset
            served.append((replica, part["fetch_offset"]))
            if budget <= 0 and total > 0:
                continue  # the response is full; the first batch found is always sent
            try:
                chunks = replicas.read(replica, part["fetch_offset"], min(part["partition_max_bytes"], max(budget, 1)))
            except LogError as e:
                resp["error_code"] = error_code_for(e)
                continue
            size = sum(len(c) for c in chunks)
            if size:
                resp["records"] = chunks
                total += size
                budget -= size
    return topics, total, served


@handler("Fetch")
async def handle(ctx, request):
    replicas = ctx.replicas
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(request["max_wait_ms"], 0) / 1000
    while True:
        topics, total, served = read_partitions(replicas, request)
        remaining = deadline - loop.time()
        failed = any(p["error_code"] for t in topics for p in t["partitions"])
        if total >= request["min_bytes"] or remaining <= 0 or failed:  # errors answer at once, as in Kafka
            break
        # Long poll: until a high watermark passes a fetch offset, or the deadline.
        if not served:
            await asyncio.sleep(remaining)
            continue
        waiters = [replicas.data_after(replica, offset) for replica, offset in served]
        try:
            await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                if not waiter.cancel() and not waiter.cancelled():
                    waiter.exception()  # retrieved: a failed replica shows as its partition's error next pass
    return {"throttle_time_ms": 0, "error_code": 0, "session_id": 0, "responses": topics}
