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
from dataclasses import dataclass

from kafkalite.broker.errors import error_code_for
from kafkalite.broker.registry import handler
from kafkalite.broker.handlers.offset_for_leader_epoch import check_current_epoch
from kafkalite.log.errors import LogError, StorageError
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


@dataclass(slots=True, eq=False)
class Served:
    """A partition answered without error: where its answer sits in the response, and the offset its long poll
    waits past (the high watermark, a follower's log end, as it was when read: new data beyond what was found)."""

    replica: object
    name: str
    part: dict
    partitions: list
    position: int
    size: int
    wait_offset: int


def read_partition(replicas, name: str, part: dict, follower: int, committed_only: bool,
                   budget: int | None) -> tuple[dict, int, object]:
    """One partition's answer, the bytes it carries, and its replica when it was served without error (None
    otherwise). `budget` None: the response is full, answer without records."""
    index = part["partition"]
    # Empty partitions carry zero-length records, never null: some clients choke on null.
    resp = {"partition_index": index, "error_code": 0, "high_watermark": -1, "last_stable_offset": -1,
            "log_start_offset": -1, "aborted_transactions": None, "records": b""}
    try:
        replica = replicas.leader(name, index)
    except NotServed as e:
        # aborted_transactions [] (not null) here is what Kafka answers for an unknown partition.
        resp.update(error_code=e.code, aborted_transactions=[])
        return resp, 0, None
    code = check_current_epoch(part["current_leader_epoch"], replica.leader_epoch)
    if code != ErrorCode.NONE:
        resp["error_code"] = code
        return resp, 0, None
    if follower >= 0:
        diverging = diverging_epoch(replica, part["last_fetched_epoch"], part["fetch_offset"])
        if diverging is not None:
            resp["diverging_epoch"] = diverging
            resp["high_watermark"] = replica.state.high_watermark
            return resp, 1, None  # answer at once: the follower must truncate before it fetches more
        replicas.follower_fetched(replica, follower, part["fetch_offset"])
    resp["high_watermark"] = replica.state.high_watermark
    resp["last_stable_offset"] = replicas.last_stable_offset(replica)
    resp["log_start_offset"] = replica.log.log_start_offset
    if committed_only:
        resp["aborted_transactions"] = []
    if budget is None:
        return resp, 0, replica
    limit = min(part["partition_max_bytes"], max(budget, 1))
    try:
        if follower >= 0:
            chunks = replicas.read_for_follower(replica, part["fetch_offset"], limit)
        elif committed_only:
            chunks, aborted = replicas.read_committed(replica, part["fetch_offset"], limit)
            resp["aborted_transactions"] = [{"producer_id": pid, "first_offset": first} for pid, first in aborted]
        else:
            chunks = replicas.read(replica, part["fetch_offset"], limit)
    except LogError as e:
        # As Kafka: a partition that answers an error (offset out of range) carries no watermarks.
        resp.update(error_code=error_code_for(e), high_watermark=-1, last_stable_offset=-1, log_start_offset=-1)
        return resp, 0, None
    size = sum(len(c) for c in chunks)
    if size:
        resp["records"] = chunks
    return resp, size, replica


def read_partitions(replicas, wanted: list, request, follower: int) -> tuple[list, int, list[Served]]:
    """One pass over every partition wanted (the request's, or its session's); returns the response topics,
    the bytes found, and the partitions served, for the long poll."""
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
            full = budget <= 0 and total > 0  # the first batch found is always sent
            resp, size, replica = read_partition(replicas, name, part, follower, committed_only,
                                                 None if full else budget)
            if replica is not None:
                served.append(Served(replica, name, part, partitions, len(partitions), size,
                                     _wait_offset(replica, part, follower)))
            partitions.append(resp)
            total += size
            budget -= size
    return topics, total, served


def _wait_offset(replica, part: dict, follower: int) -> int:
    """The long poll waits until the watermark passes this: new data beyond what this read could find."""
    now = replica.log.log_end_offset if follower >= 0 else replica.state.high_watermark
    return max(part["fetch_offset"], now)


def reread(replicas, served: list[Served], request, follower: int, total: int) -> tuple[int, bool]:
    """After a long poll woke: answer again the partitions whose watermark moved; the new total of bytes, and
    whether one of them now answers an error."""
    committed_only = follower < 0 and request.get("isolation_level", 0) == 1
    failed = False
    for entry in served:
        budget = request["max_bytes"] - total + entry.size
        resp, size, replica = read_partition(replicas, entry.name, entry.part, follower, committed_only,
                                             None if budget <= 0 and total > entry.size else budget)
        entry.partitions[entry.position] = resp
        total += size - entry.size
        entry.size = size
        if replica is None:
            failed = True
        else:
            entry.replica = replica
            entry.wait_offset = _wait_offset(replica, entry.part, follower)
    return total, failed


def _settle(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(False)


@handler("Fetch")
async def handle(ctx, request):
    replicas = ctx.replicas
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(request["max_wait_ms"], 0) / 1000
    follower = request["replica_id"]
    plan = ctx.services.fetch_sessions.plan(request)
    if plan.error:
        return {"throttle_time_ms": 0, "error_code": plan.error, "session_id": 0, "responses": []}
    topics, total, served = read_partitions(replicas, plan.topics, request, follower)
    failed = any(p["error_code"] for t in topics for p in t["partitions"])
    waited = False
    while True:
        remaining = deadline - loop.time()
        if total >= request["min_bytes"] or remaining <= 0 or failed:  # errors answer at once, as in Kafka
            break
        if not served:
            await asyncio.sleep(remaining)
            break  # (nothing served, nothing to answer afresh)
        # Long poll: one future for every partition, done once a watermark passes what was found (new data), or
        # at the deadline; then only the partitions that moved are read again.
        woken = loop.create_future()
        for entry in served:
            replicas.notify_after(entry.replica, entry.wait_offset, woken, follower >= 0)
        deadline_timer = loop.call_later(remaining, _settle, woken)
        try:
            await woken
        except StorageError:
            pass  # a failed replica: its partition answers the error when read again
        finally:
            deadline_timer.cancel()
        moved = [entry for entry in served if replicas.moved_after(entry.replica, entry.wait_offset, follower >= 0)]
        total, failed = reread(replicas, moved, request, follower, total)
        waited = True
    if waited:  # the others' watermarks may have moved meanwhile (another follower's fetch): answer them as now
        for entry in served:
            resp = entry.partitions[entry.position]
            if resp["error_code"] == 0 and "diverging_epoch" not in resp:
                resp["high_watermark"] = entry.replica.state.high_watermark
                resp["last_stable_offset"] = replicas.last_stable_offset(entry.replica)
                resp["log_start_offset"] = entry.replica.log.log_start_offset
    session_id, topics = plan.answer(topics)
    return {"throttle_time_ms": 0, "error_code": 0, "session_id": session_id, "responses": topics}
