"""Produce (key 0): versions 3-10 (record batch v2 only)."""

from __future__ import annotations

import asyncio

from kafkalite.broker.errors import Rejected, error_code_for
from kafkalite.broker.registry import handler
from kafkalite.group import OFFSETS_TOPIC
from kafkalite.log.errors import LogError
from kafkalite.protocol import record_batch
from kafkalite.protocol.errors import DecodeError, ErrorCode
from kafkalite.replication.replica_manager import NotServed
from kafkalite.txn import TRANSACTION_STATE_TOPIC


def validate(records) -> record_batch.RecordBatch:
    """Check a partition's records as Kafka does for v3+: exactly one well-formed v2 batch. Limits that
    depend on the topic's config (max.message.bytes, timestamps) are the log's to check, on append."""
    if records is None or len(records) == 0:
        raise Rejected(ErrorCode.INVALID_RECORD, "no record batch")
    try:
        batches = list(record_batch.iter_batches(records))
    except DecodeError as e:
        raise Rejected(ErrorCode.CORRUPT_MESSAGE, str(e)) from None
    if len(batches) != 1:
        raise Rejected(ErrorCode.INVALID_RECORD, "a produce request carries exactly one batch per partition")
    batch = batches[0]
    if not batch.crc_ok():
        raise Rejected(ErrorCode.CORRUPT_MESSAGE, "batch CRC does not match")
    if batch.base_offset != 0:
        raise Rejected(ErrorCode.INVALID_RECORD, "baseOffset of a produced batch must be 0")
    if batch.records_count != batch.last_offset_delta + 1 or batch.records_count < 1:
        raise Rejected(ErrorCode.INVALID_RECORD, "record count does not match lastOffsetDelta + 1")
    if batch.is_control:
        raise Rejected(ErrorCode.INVALID_RECORD, "clients may not produce control batches")
    if batch.codec > 4:
        raise Rejected(ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, f"unknown compression codec {batch.codec}")
    return batch


def unkeyed_record_errors(batch: record_batch.RecordBatch, topic: str, partition: int) -> list[dict]:
    """The record errors of a batch for a compacted topic: Kafka refuses every record without a key there,
    as compaction keeps the last record of each key. Decompresses the batch, as Kafka does to check it."""
    try:
        unkeyed = [i for i, record in enumerate(batch.records()) if record.key is None]
    except DecodeError as e:
        raise Rejected(ErrorCode.CORRUPT_MESSAGE, str(e)) from None
    message = f"Compacted topic cannot accept message without key in topic partition {topic}-{partition}."
    return [{"batch_index": i, "batch_index_error_message": message} for i in unkeyed]


@handler("Produce")
async def handle(ctx, request):
    replicas = ctx.replicas
    acks = request["acks"]
    responses = []
    endpoints: dict[int, dict] = {}  # v10: the brokers named in current_leader hints
    commits = []  # (partition response, future done once the high watermark passes the batch)
    for topic in request["topic_data"]:
        name = topic["name"]
        partition_responses = []
        responses.append({"name": name, "partition_responses": partition_responses})
        for part in topic["partition_data"]:
            resp = {"index": part["index"], "error_code": 0, "base_offset": -1, "log_append_time_ms": -1,
                    "log_start_offset": -1, "record_errors": [], "error_message": None}
            partition_responses.append(resp)
            if acks not in (-1, 0, 1):
                resp["error_code"] = ErrorCode.INVALID_REQUIRED_ACKS
                continue
            if name in (OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC):
                resp["error_code"] = ErrorCode.INVALID_TOPIC_EXCEPTION
                resp["error_message"] = "clients may not write to an internal topic"
                continue
            try:
                batch = validate(part["records"])
                if replicas.leader(name, part["index"]).log.config.compact:
                    resp["record_errors"] = unkeyed_record_errors(batch, name, part["index"])
                    if resp["record_errors"]:
                        resp["error_code"] = ErrorCode.INVALID_RECORD
                        resp["error_message"] = resp["record_errors"][0]["batch_index_error_message"]
                        continue
                replica, result = await replicas.append(name, part["index"], batch.buf, acks)
            except (Rejected, NotServed) as e:
                resp["error_code"], resp["error_message"] = e.code, e.message
                if e.code == ErrorCode.NOT_LEADER_OR_FOLLOWER:
                    hint_leader(ctx, resp, name, part["index"], endpoints)
                continue
            except (LogError, OSError) as e:
                resp["error_code"], resp["error_message"] = error_code_for(e), str(e)
                continue
            resp["base_offset"] = result.base_offset
            resp["log_append_time_ms"] = result.log_append_time
            resp["log_start_offset"] = replica.log.log_start_offset
            if acks == -1:
                commits.append((resp, replica, replicas.replicated(replica, result.last_offset + 1)))
    if commits:
        await wait_committed(replicas, commits, request["timeout_ms"])
    if acks == 0:
        return None
    return {"responses": responses, "throttle_time_ms": 0, "node_endpoints": list(endpoints.values())}


def hint_leader(ctx, resp: dict, topic: str, index: int, endpoints: dict[int, dict]) -> None:
    """Produce v10 (KIP-951): a NOT_LEADER_OR_FOLLOWER answer names the current leader, so the client can go
    there without a Metadata round trip."""
    info = ctx.metadata.image.partition(topic, index)
    leader = ctx.metadata.image.leader_of(topic, index)
    if info is None or leader is None or leader.node_id == ctx.node_id:
        return
    resp["current_leader"] = {"leader_id": leader.node_id, "leader_epoch": info.leader_epoch}
    endpoints[leader.node_id] = {"node_id": leader.node_id, "host": leader.host, "port": leader.port,
                                 "rack": leader.rack}


async def wait_committed(replicas, commits: list, timeout_ms: int) -> None:
    """acks=all: wait until the high watermark passes every batch, for at most timeout_ms. A batch that is
    written but not committed in time (or whose replica failed or went away, or whose broker lost its lease)
    gets an error, so the client does not count it as acknowledged; an idempotent producer's retry is then
    deduplicated."""
    futures = [future for _, _, future in commits]
    await asyncio.wait(futures, timeout=max(timeout_ms, 0) / 1000)
    for resp, replica, future in commits:
        if not future.done():
            future.cancel()
            resp["error_code"], resp["error_message"] = ErrorCode.REQUEST_TIMED_OUT, "not replicated within timeout_ms"
        elif future.exception() is not None:
            error = future.exception()
            resp["error_code"], resp["error_message"] = error_code_for(error), str(error)
        elif not future.result():
            resp["error_code"] = ErrorCode.NOT_LEADER_OR_FOLLOWER
            resp["error_message"] = "the partition moved or was deleted before the write was committed"
        elif (refused := replicas.acknowledgement_error(replica)) is not None:
            resp["error_code"], resp["error_message"] = refused.code, refused.message
