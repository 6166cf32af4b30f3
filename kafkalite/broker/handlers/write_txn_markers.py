"""WriteTxnMarkers (key 27): versions 0-1 (advertised from 1, as Kafka 4). Broker to broker: a transaction
coordinator asks this broker, the leader of the partitions named, to append each transaction's COMMIT or ABORT
marker (a control batch carrying the producer id and epoch and the coordinator epoch). Each partition answers once
its marker is committed; a marker on a `__consumer_offsets` partition also settles the transaction's
TxnOffsetCommits in the group coordinator. Errors per partition: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER
(the coordinator retries at the new leader), INVALID_PRODUCER_EPOCH for a marker older than the producer's epoch.
The partitions are written at once. Like every API here it needs no authorization (Kafka asks for CLUSTER_ACTION)."""

from __future__ import annotations

import asyncio
import logging

from kafkalite.broker.registry import handler
from kafkalite.broker.transactions import LocalMarkers, marker_batch
from kafkalite.log.errors import LogError
from kafkalite.protocol.errors import ErrorCode
from kafkalite.replication.replica_manager import NotServed

log = logging.getLogger("kafkalite.broker")


async def _write(ctx, markers: LocalMarkers, marker: dict, topic: str, index: int) -> int:
    commit = marker["transaction_result"]
    batch = marker_batch(marker["producer_id"], marker["producer_epoch"], commit, ctx.replicas.now_ms(),
                         marker["coordinator_epoch"])
    try:
        await markers.write_marker(topic, index, batch, marker["producer_id"], commit)
    except LookupError:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    except NotServed as e:
        return e.code
    except LogError as e:
        return e.error_code
    except Exception:  # noqa: BLE001 - the coordinator retries whatever failed
        log.exception("writing a marker of producer %d to %s-%d failed", marker["producer_id"], topic, index)
        return ErrorCode.UNKNOWN_SERVER_ERROR
    return ErrorCode.NONE


@handler("WriteTxnMarkers")
async def handle(ctx, request):
    markers = LocalMarkers(ctx.replicas, ctx.groups)
    writes = [(m, t["name"], i) for m in request["markers"] for t in m["topics"] for i in t["partition_indexes"]]
    codes = iter(await asyncio.gather(*(_write(ctx, markers, m, topic, i) for m, topic, i in writes)))
    return {"markers": [
        {"producer_id": m["producer_id"], "topics": [
            {"name": t["name"], "partitions": [{"partition_index": i, "error_code": next(codes)}
                                               for i in t["partition_indexes"]]}
            for t in m["topics"]]}
        for m in request["markers"]]}
