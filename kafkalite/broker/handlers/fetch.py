"""Fetch (key 1): versions 4-12. Long poll; fetch sessions are declined (session_id 0)."""

from __future__ import annotations

import asyncio

from kafkalite.broker.errors import error_code_for
from kafkalite.broker.registry import handler
from kafkalite.log.errors import LogError
from kafkalite.protocol.errors import ErrorCode


def read_partitions(broker, request) -> tuple[list, int]:
    """One pass over every requested partition; returns the response topics and the bytes found."""
    budget = request["max_bytes"]
    total = 0
    topics = []
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
            plog = broker.partition_log(name, index)
            if plog is None:
                # aborted_transactions [] (not null) here is what Kafka answers for an unknown partition.
                resp.update(error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, aborted_transactions=[])
                continue
            resp["high_watermark"] = resp["last_stable_offset"] = plog.high_watermark
            resp["log_start_offset"] = plog.log_start_offset
            if budget <= 0 and total > 0:
                continue  # the response is full; the first batch found is always sent
            try:
                chunks = plog.read(part["fetch_offset"], min(part["partition_max_bytes"], max(budget, 1)))
            except LogError as e:
                # As Kafka: a partition that answers an error (offset out of range) carries no watermarks.
                resp.update(error_code=error_code_for(e), high_watermark=-1, last_stable_offset=-1,
                            log_start_offset=-1)
                continue
            size = sum(len(c) for c in chunks)
            if size:
                resp["records"] = chunks
                total += size
                budget -= size
    return topics, total


@handler("Fetch")
async def handle(ctx, request):
    broker = ctx.broker
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(request["max_wait_ms"], 0) / 1000
    while True:
        topics, total = read_partitions(broker, request)
        remaining = deadline - loop.time()
        if total >= request["min_bytes"] or remaining <= 0:
            break
        # Long poll: sleep until an append to any requested partition, or the deadline.
        waiters = [
            broker.data_waiter(t["topic"], p["partition"])
            for t in request["topics"]
            for p in t["partitions"]
            if broker.partition_log(t["topic"], p["partition"]) is not None
        ]
        if not waiters:
            await asyncio.sleep(remaining)
            continue
        await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
    return {"throttle_time_ms": 0, "error_code": 0, "session_id": 0, "responses": topics}
