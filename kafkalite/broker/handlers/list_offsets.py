"""ListOffsets (key 2): versions 1-7. Earliest (-2), latest (-1), max timestamp (-3), or by timestamp.

With isolation_level 1 (read_committed, v2+) latest is the last stable offset, and a timestamp search never finds
a record at or above it, as in Kafka.

A new leader's high watermark lags until its followers fetch again; while it is below the start of the leader's
epoch, a consumer asking for latest (or for a timestamp with nothing below the high watermark) gets
OFFSET_NOT_AVAILABLE (LEADER_NOT_AVAILABLE before v5), a retriable error, rather than an end offset smaller than
the previous leader gave (KIP-207: ListOffsets answers never go backwards across a leader change)."""

from kafkalite.broker.errors import error_code_for
from kafkalite.broker.registry import handler
from kafkalite.log.errors import LogError
from kafkalite.protocol.errors import ErrorCode
from kafkalite.replication.replica_manager import NotServed, epoch_start_offset

LATEST, EARLIEST, MAX_TIMESTAMP = -1, -2, -3
CONSUMER_REPLICA_ID = -1


def lookup(replica, timestamp: int, limit: int | None = None) -> tuple[int, int]:
    """(timestamp, offset) as ListOffsets reports them; (-1, -1) when no record qualifies. Only committed
    records count: latest is the high watermark (or `limit`, the last stable offset for read_committed), and a
    timestamp search never finds a record above it."""
    plog = replica.log
    high_watermark = replica.state.high_watermark if limit is None else limit
    if timestamp == LATEST:
        return -1, high_watermark
    if timestamp == EARLIEST:
        return -1, plog.log_start_offset
    found = plog.max_timestamp_offset() if timestamp == MAX_TIMESTAMP else plog.offset_for_timestamp(timestamp)
    if found is None:
        return -1, -1
    offset, ts = found
    if offset >= high_watermark:
        return -1, -1
    return ts, offset


def _watermark_lags_epoch(replica) -> bool:
    """A leader just elected whose high watermark has not yet reached the start of its epoch (KIP-207)."""
    return epoch_start_offset(replica) > replica.state.high_watermark


@handler("ListOffsets")
async def handle(ctx, request):
    replicas = ctx.replicas
    topics = []
    for topic in request["topics"]:
        partitions = []
        topics.append({"name": topic["name"], "partitions": partitions})
        for part in topic["partitions"]:
            resp = {"partition_index": part["partition_index"], "error_code": 0, "timestamp": -1, "offset": -1,
                    "leader_epoch": -1}
            partitions.append(resp)
            try:
                replica = replicas.leader(topic["name"], part["partition_index"])
            except NotServed as e:
                resp["error_code"] = e.code
                continue
            if part["timestamp"] == MAX_TIMESTAMP and ctx.api_version < 7:
                resp["error_code"] = ErrorCode.UNSUPPORTED_VERSION
                continue
            try:
                limit = replicas.last_stable_offset(replica) if request.get("isolation_level", 0) == 1 else None
                resp["timestamp"], resp["offset"] = lookup(replica, part["timestamp"], limit)
                if (part["timestamp"] != EARLIEST and (part["timestamp"] == LATEST or resp["offset"] < 0)
                        and request["replica_id"] == CONSUMER_REPLICA_ID and _watermark_lags_epoch(replica)):
                    resp["timestamp"], resp["offset"] = -1, -1
                    resp["error_code"] = (ErrorCode.OFFSET_NOT_AVAILABLE if ctx.api_version >= 5
                                          else ErrorCode.LEADER_NOT_AVAILABLE)
                elif resp["offset"] >= 0:  # as Kafka: -1 when no offset matches
                    resp["leader_epoch"] = replica.leader_epoch
            except (LogError, OSError) as e:
                resp["error_code"] = error_code_for(e)
    return {"throttle_time_ms": 0, "topics": topics}
