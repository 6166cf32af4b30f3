"""Fetch (key 1): versions 4-12. Long poll; incremental fetch sessions (broker/fetch_sessions.py).

Consumers read whole batches below the high watermark, and a long poll waits until the high watermark of a
requested partition passes its fetch offset (replication/watermark.py), or max_wait_ms. A follower (replica_id
>= 0) reads up to the log end and waits on it; its fetch offset tells the leader how far it has copied, and a
last_fetched_epoch that the leader's log does not have at that offset gets `diverging_epoch`, where the
follower truncates. A current_leader_epoch older than the leader's is FENCED_LEADER_EPOCH, a newer one
UNKNOWN_LEADER_EPOCH, as in Kafka.

isolation_level 1 (read_committed): only batches below the last stable offset (the high watermark, or the first
offset of the oldest open transaction), with the aborted transactions that overlap them, so the consumer drops
their records; the long poll then waits for the next append (a marker moves the last stable offset).
"""

from __future__ import annotations

import asyncio

from kafkalite.broker.errors import error_code_for
from kafkalite.broker.registry import handler
from kafkalite.broker.handlers.offset_for_leader_epoch import check_current_epoch
from kafkalite.log.errors import LogError
from kafkalite.protocol.errors import ErrorCode
from kafkalite.replication.replica_manager import NotServed


def diverging_epoch(replica, last_fetched_epoch: int, fetch_offset: int) -> dict | None:
    """Kafka's check of a follower's position: where the epoch it last fetched ends on the leader. None when
    the follower's log agrees with the leader's up to its fetch offset."""
    if last_fetched_epoch < 0:
        return None
    if last_fetched_epoch == replica.leader_epoch:
        # The current epoch ends at the log end: a follower past it has a tail this leader lost (its power was
        # cut after the follower had fsynced more than the leader had), and must cut it, as in Kafka.
        end = replica.log.log_end_offset
        return None if fetch_offset <= end else {"epoch": last_fetched_epoch, "end_offset": end}
    epoch, end = replica.log.epoch_end_offset(last_fetched_epoch)
    if epoch == last_fetched_epoch and end >= fetch_offset:
        return None
    return {"epoch": epoch, "end_offset": end}


def read_partitions(replicas, wanted: list, request, follower: int) -> tuple[list, int, list]:
    """One pass over every partition wanted (the request's, or its session's); returns the response topics,
    the bytes found, and the (replica, fetch offset) of each partition that was served, for the long poll."""
    budget = request["max_bytes"]
    total = 0
    topics = []
    served = []
    committed_only = follower < 0 and request.get("isolation_level", 0) == 1
    for topic in wanted:
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
                # aborted_transactions [] (not null) here is what Kafka answers for an unknown partition.
                resp.update(error_code=e.code, aborted_transactions=[])
                continue
            plog = replica.log
            code = check_current_epoch(part["current_leader_epoch"], replica.leader_epoch)
            if code != ErrorCode.NONE:
                resp["error_code"] = code
                continue
            if follower >= 0:
                diverging = diverging_epoch(replica, part["last_fetched_epoch"], part["fetch_offset"])
                if diverging is not None:
                    resp["diverging_epoch"] = diverging
                    resp["high_watermark"] = replica.state.high_watermark
                    total += 1  # answer at once: the follower must truncate before it fetches more
                    continue
                replicas.follower_fetched(replica, follower, part["fetch_offset"])
            resp["high_watermark"] = replica.state.high_watermark
            resp["last_stable_offset"] = lso = replicas.last_stable_offset(replica)
            resp["log_start_offset"] = plog.log_start_offset
            if committed_only:
                resp["aborted_transactions"] = []
                # below the high watermark but not yet stable: wait for the next append, not the fetch offset
                served.append((replica, max(part["fetch_offset"], replica.state.high_watermark)
                               if part["fetch_offset"] >= lso else part["fetch_offset"]))
            else:
                served.append((replica, part["fetch_offset"]))
            if budget <= 0 and total > 0:
                continue  # the response is full; the first batch found is always sent
            limit = min(part["partition_max_bytes"], max(budget, 1))
            try:
                if follower >= 0:
                    chunks = replicas.read_for_follower(replica, part["fetch_offset"], limit)
                elif committed_only:
                    chunks, aborted = replicas.read_committed(replica, part["fetch_offset"], limit)
                    resp["aborted_transactions"] = [{"producer_id": pid, "first_offset": first}
                                                    for pid, first in aborted]
                else:
                    chunks = replicas.read(replica, part["fetch_offset"], limit)
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
    return topics, total, served


@handler("Fetch")
async def handle(ctx, request):
    replicas = ctx.replicas
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(request["max_wait_ms"], 0) / 1000
    follower = request["replica_id"]
    plan = ctx.services.fetch_sessions.plan(request)
    if plan.error:
        return {"throttle_time_ms": 0, "error_code": plan.error, "session_id": 0, "responses": []}
    while True:
        topics, total, served = read_partitions(replicas, plan.topics, request, follower)
        remaining = deadline - loop.time()
        failed = any(p["error_code"] for t in topics for p in t["partitions"])
        if total >= request["min_bytes"] or remaining <= 0 or failed:  # errors answer at once, as in Kafka
            break
        # Long poll: until a high watermark passes a fetch offset, or the deadline.
        if not served:
            await asyncio.sleep(remaining)
            continue
        wait = replicas.appended_after if follower >= 0 else replicas.data_after
        waiters = [wait(replica, offset) for replica, offset in served]
        try:
            await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                if not waiter.cancel() and not waiter.cancelled():
                    waiter.exception()  # retrieved: a failed replica shows as its partition's error next pass
    session_id, topics = plan.answer(topics)
    return {"throttle_time_ms": 0, "error_code": 0, "session_id": session_id, "responses": topics}
