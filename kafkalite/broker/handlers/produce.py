"""Produce (key 0): versions 3-10 (record batch v2 only)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

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


# What a coordinator's verification answer means to the producer (KIP-890, as Kafka's ReplicaManager answers at the
# Produce versions kafkalite serves, before v12): the partition is not in the transaction is INVALID_TXN_STATE; a
# fenced producer INVALID_PRODUCER_EPOCH; a coordinator that could not answer now NOT_ENOUGH_REPLICAS, which every
# client retries without a metadata refresh. Other answers (INVALID_PRODUCER_ID_MAPPING) reach the client as they are.
_VERIFICATION_ERRORS = {
    ErrorCode.TRANSACTION_ABORTABLE: ErrorCode.INVALID_TXN_STATE,
    ErrorCode.CLUSTER_AUTHORIZATION_FAILED: ErrorCode.INVALID_TXN_STATE,
    ErrorCode.PRODUCER_FENCED: ErrorCode.INVALID_PRODUCER_EPOCH,
    ErrorCode.NETWORK_EXCEPTION: ErrorCode.NOT_ENOUGH_REPLICAS,
    ErrorCode.COORDINATOR_LOAD_IN_PROGRESS: ErrorCode.NOT_ENOUGH_REPLICAS,
    ErrorCode.COORDINATOR_NOT_AVAILABLE: ErrorCode.NOT_ENOUGH_REPLICAS,
    ErrorCode.NOT_COORDINATOR: ErrorCode.NOT_ENOUGH_REPLICAS,
    ErrorCode.CONCURRENT_TRANSACTIONS: ErrorCode.NOT_ENOUGH_REPLICAS,
}

@handler("Produce")
async def handle(ctx, request):
    """Appends in the order the connection sent its requests; the waits for acks=all overlap. Kafka handles one
    request of a connection at a time; kafkalite runs a connection's requests concurrently, so without this a
    request held at one partition (housekeeping in progress there) let the next request of the same producer
    append to another partition first, and an idempotent producer's later batch overtook an earlier one."""
    appends_done = ctx.services.appends_done
    previous = appends_done.get(ctx.connection_id)
    mine = appends_done[ctx.connection_id] = asyncio.get_running_loop().create_future()
    try:
        if previous is not None:
            await asyncio.wait([previous])  # not `await previous`: its cancellation is not ours
        responses, endpoints, commits = await append_all(ctx, request)
    finally:
        mine.set_result(None)
        if appends_done.get(ctx.connection_id) is mine:
            del appends_done[ctx.connection_id]
    if commits:
        await wait_committed(ctx.replicas, commits, request["timeout_ms"])
    if request["acks"] == 0:
        return None
    return {"responses": responses, "throttle_time_ms": 0, "node_endpoints": list(endpoints.values())}


async def append_all(ctx, request) -> tuple[list, dict, list]:
    """Every partition's batch appended (or refused) in request order: (responses, endpoints, commits)."""
    replicas = ctx.replicas
    acks = request["acks"]
    responses = []
    endpoints: dict[int, dict] = {}  # v10: the brokers named in current_leader hints
    accepted = []  # (partition response, topic, index, batch): valid, to be appended
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
            batch = None
            try:
                batch = validate(part["records"])
                if replicas.leader(name, part["index"]).log.config.compact:
                    resp["record_errors"] = unkeyed_record_errors(batch, name, part["index"])
                    if resp["record_errors"]:
                        resp["error_code"] = ErrorCode.INVALID_RECORD
                        resp["error_message"] = resp["record_errors"][0]["batch_index_error_message"]
                        continue
            except (Rejected, NotServed) as e:
                fail(ctx, resp, e.code, e.message, name, part["index"], endpoints, batch)
                continue
            accepted.append((resp, name, part["index"], batch))
    guards: dict[tuple[str, int], object] = {}  # partition -> the guard of its verified first transactional batch
    if request["transactional_id"] and ctx.config["transaction.partition.verification.enable"]:
        accepted, guards = await verified(ctx, request["transactional_id"], accepted)
    commits = []  # (partition response, replica, future done once the high watermark passes the batch)
    for resp, name, index, batch in accepted:
        try:
            replica, result = await replicas.append(name, index, batch.buf, acks, guards.get((name, index)))
        except (Rejected, NotServed) as e:
            fail(ctx, resp, e.code, e.message, name, index, endpoints, batch)
            continue
        except (LogError, OSError) as e:
            resp["error_code"], resp["error_message"] = error_code_for(e), str(e)
            if resp["error_code"] == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER:
                refused = refused_before(ctx, name, index, batch)
                if refused is not None:
                    fail(ctx, resp, refused, f"an earlier batch of this connection was refused with "
                         f"{ErrorCode(refused).name}: send them again in order", name, index, endpoints, batch)
            continue
        refused_partitions = ctx.services.refused_before_append.get(ctx.connection_id)
        if refused_partitions:
            refused_partitions.pop((name, index), None)
        resp["base_offset"] = result.base_offset
        resp["log_append_time_ms"] = result.log_append_time
        resp["log_start_offset"] = replica.log.log_start_offset
        if acks == -1:
            commits.append((resp, replica, replicas.replicated(replica, result.last_offset + 1)))
    return responses, endpoints, commits


# Refusals made before anything is appended, which a client retries in order: the batch's sequence is not used.
RETRIED_IN_ORDER = frozenset({ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.NOT_ENOUGH_REPLICAS})


def fail(ctx, resp: dict, code: int, message: str | None, topic: str, index: int, endpoints: dict[int, dict],
         batch: record_batch.RecordBatch | None = None) -> None:
    resp["error_code"], resp["error_message"] = code, message
    if code == ErrorCode.NOT_LEADER_OR_FOLLOWER:
        hint_leader(ctx, resp, topic, index, endpoints)
    if code in RETRIED_IN_ORDER and batch is not None:
        ctx.services.refused_before_append.setdefault(ctx.connection_id, {})[(topic, index)] = Refusal(
            code, batch.producer_id, batch.producer_epoch, batch.base_sequence)


@dataclass(frozen=True)
class Refusal:
    """A batch refused before its append (one of RETRIED_IN_ORDER), and the error it was given."""

    code: int
    producer_id: int
    producer_epoch: int
    base_sequence: int


def refused_before(ctx, topic: str, index: int, batch: record_batch.RecordBatch) -> int | None:
    """The error to give an out-of-order `batch` when this connection's last batch for the partition, from the
    same producer and a sequence behind it, was refused before its append and nothing was appended there since.
    A client pipelines its batches: when the cause of the refusal ends between two of them (this broker became
    the leader, the ISR grew back), the next batch, a sequence ahead, is out of order. Kafka answers it
    OUT_OF_ORDER_SEQUENCE_NUMBER, and librdkafka then bumps its producer epoch and sends again, under the new
    epoch, batches that may be stored already (stored twice: librdkafka issue #4953; the rolling restart and
    power-cut faults met it). Given the same answer as the batch before it, the client retries both in order,
    and nothing is stored twice. The refused batch itself, sent again and out of order (its predecessors were
    lost: a power cut of every replica under durability=interval), gets OUT_OF_ORDER_SEQUENCE_NUMBER: answering
    it the old refusal would keep the client retrying for ever."""
    refusals = ctx.services.refused_before_append.get(ctx.connection_id, {})
    refusal = refusals.get((topic, index))
    if (refusal is None or refusal.producer_id != batch.producer_id or refusal.producer_epoch != batch.producer_epoch
            or refusal.base_sequence >= batch.base_sequence):
        refusals.pop((topic, index), None)
        return None
    return refusal.code


async def verified(ctx, transactional_id: str, accepted: list) -> tuple[list, dict[tuple[str, int], object]]:
    """KIP-890 part 1: a producer's first transactional batch on a partition (no transaction of its open there at
    its epoch) is appended only once the coordinator confirms the partition is in its ongoing transaction, so a
    late or stray batch cannot open a transaction the coordinator will never end. One question per request, for
    all such partitions; the others fail with the coordinator's answer and are not appended. Returns the entries
    to append and, per verified partition, the guard to append with (refused if the transaction ended while the
    coordinator was asked)."""
    unverified: dict[tuple[str, int], tuple[int, int]] = {}  # partition -> (producer id, epoch)
    for resp, name, index, batch in accepted:
        if batch.is_transactional and batch.producer_id >= 0:
            try:
                open_here = ctx.replicas.leader(name, index).log.has_open_transaction(batch.producer_id,
                                                                                      batch.producer_epoch)
            except NotServed:
                continue  # the append answers it
            if not open_here:
                unverified[(name, index)] = (batch.producer_id, batch.producer_epoch)
    if not unverified:
        return accepted, {}
    guards = {(name, index): ctx.replicas.leader(name, index).log.begin_verification(producer_id)
              for (name, index), (producer_id, _) in unverified.items()}
    producers = set(unverified.values())
    if len(producers) > 1:  # as Kafka: one request's transactional batches come from one producer
        codes = dict.fromkeys(unverified, ErrorCode.INVALID_PRODUCER_ID_MAPPING)
    else:
        (producer_id, producer_epoch), = producers
        codes = await ctx.transactions.verify_for_produce(transactional_id, producer_id, producer_epoch,
                                                          set(unverified))
    kept = []
    for entry in accepted:
        resp, name, index, _ = entry
        code = codes.get((name, index), ErrorCode.NONE)
        if code == ErrorCode.NONE:
            kept.append(entry)
            continue
        ctx.replicas.leader(name, index).log.end_verification(unverified[(name, index)][0], guards.pop((name, index)))
        resp["error_code"] = _VERIFICATION_ERRORS.get(code, code)
        resp["error_message"] = ("Partition was not added to the transaction"
                                 if resp["error_code"] == ErrorCode.INVALID_TXN_STATE else
                                 "Unable to verify the partition has been added to the transaction. "
                                 f"Underlying error: {ErrorCode(code).name}")
    return kept, guards


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
