"""Transactions side by side, as a transactional producer and a read_committed consumer live them: a commit and
an abort as read_committed Fetch and ListOffsets see them, an open transaction holding the last stable offset,
transactional offset commits as OffsetFetch sees them, and a producer fenced by a second InitProducerId.

Kafka answers EndTxn once its PrepareCommit/PrepareAbort is written and writes the markers after, so what must
wait for the markers polls (retry_while) until the last stable offset has moved; kafkalite answers after them."""

from __future__ import annotations

from diff_harness import (
    TXN_TIMESTAMP, Pair, add_partitions_body, concurrent, create_topic_body, end_txn_body, fetch_body,
    init_transactional, leader_not_ready, list_offsets_body, offset_fetch_body, produce_body,
    produce_without_error_details, read_committed, stable_at, txn_body, txn_offset_commit_body, txn_produce_body,
    wait_for_topic,
)
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.record_batch import build_batch

LATEST = -1


def create(pair: Pair, topic: str, partitions: int = 1) -> None:
    assert pair.same("CreateTopics", 7, create_topic_body(topic, partitions))["topics"][0]["error_code"] == 0
    for side in pair.sides:
        wait_for_topic(side, topic, partitions)


def fetched(answer: dict) -> dict:
    return answer["responses"][0]["partitions"][0]


def plain_produce(pair: Pair, topic: str, *values: bytes) -> dict:
    answer = pair.same("Produce", 9, produce_body(topic, build_batch([(None, v) for v in values],
                                                                     timestamps=TXN_TIMESTAMP)),
                       retry_while=leader_not_ready)
    return answer["responses"][0]["partition_responses"][0]


def txn_produce(pair: Pair, tid: str, topic: str, values: list[bytes], sequence: int, **kw) -> dict:
    answer = pair.same("Produce", 9, txn_produce_body(tid, topic, values, sequence, **kw), retry_while=leader_not_ready)
    return answer["responses"][0]["partition_responses"][0]


def begin(pair: Pair, tid: str, topic: str, who: str = "txn") -> None:
    """A transaction on partition 0 of `topic` (after the previous one's markers, as a client retries)."""
    answer = pair.same("AddPartitionsToTxn", 3, add_partitions_body(tid, {topic: [0]}, who=who),
                       retry_while=concurrent)
    assert answer["results_by_topic"][0]["results_by_partition"][0]["partition_error_code"] == 0


def end(pair: Pair, tid: str, commit: bool, who: str = "txn") -> dict:
    return pair.same("EndTxn", 3, end_txn_body(tid, commit, who=who), retry_while=concurrent)


def latest(pair: Pair, topic: str, isolation: int) -> int:
    answer = pair.same("ListOffsets", 7, list_offsets_body(topic, LATEST) | {"isolation_level": isolation})
    return answer["topics"][0]["partitions"][0]["offset"]


def test_commit_then_read_committed(pair, names):
    topic, tid = names(), names("txn")
    create(pair, topic)
    init_transactional(pair, tid)
    begin(pair, tid, topic)
    assert txn_produce(pair, tid, topic, [b"a", b"b"], 0)["base_offset"] == 0
    assert txn_produce(pair, tid, topic, [b"c"], 2)["base_offset"] == 2
    open_fetch = fetched(pair.same("Fetch", 12, read_committed(fetch_body(topic, 0))))
    assert (open_fetch["high_watermark"], open_fetch["last_stable_offset"], open_fetch["records"]) == (3, 0, [])
    assert end(pair, tid, commit=True)["error_code"] == 0
    done = fetched(pair.same("Fetch", 12, read_committed(fetch_body(topic, 0)), retry_while=stable_at(4)))
    assert done["high_watermark"] == done["last_stable_offset"] == 4  # the records and the COMMIT marker
    values = [r[3] for batch in done["records"] for r in batch["records"]]
    assert values[:3] == [b"a", b"b", b"c"] and done["aborted_transactions"] in ([], None)
    assert (latest(pair, topic, 0), latest(pair, topic, 1)) == (4, 4)
    pair.same("Fetch", 12, fetch_body(topic, 0))  # read_uncommitted sees the same log


def test_abort_then_read_committed_at_every_fetch_version(pair, names):
    topic, tid = names(), names("txn")
    create(pair, topic)
    plain_produce(pair, topic, b"before")
    init_transactional(pair, tid)
    begin(pair, tid, topic)
    txn_produce(pair, tid, topic, [b"aborted 1", b"aborted 2"], 0)
    assert end(pair, tid, commit=False)["error_code"] == 0
    plain_produce(pair, topic, b"after")  # offset 4, after the ABORT marker at 3
    done = fetched(pair.same("Fetch", 12, read_committed(fetch_body(topic, 0)), retry_while=stable_at(5)))
    assert done["aborted_transactions"] == [{"producer_id": "<producer-1>", "first_offset": 1}]
    markers = [b for b in done["records"] if b["attributes"] & 0x20]
    assert [(b["base_offset"], b["records"][0][2]) for b in markers] == [(3, b"\x00\x00\x00\x00")]  # ABORT
    for version in range(4, 13):  # last_stable_offset and aborted_transactions from v4
        pair.same("Fetch", version, read_committed(fetch_body(topic, 0)))
        pair.same("Fetch", version, read_committed(fetch_body(topic, 2)))  # inside the aborted transaction
        pair.same("Fetch", version, read_committed(fetch_body(topic, 4)))  # after it: no aborted transaction
        pair.same("Fetch", version, fetch_body(topic, 0))  # read_uncommitted: no aborted transactions listed


def test_an_open_transaction_holds_the_last_stable_offset(pair, names):
    topic, tid = names(), names("txn")
    create(pair, topic)
    plain_produce(pair, topic, b"0", b"1")
    init_transactional(pair, tid)
    begin(pair, tid, topic)
    txn_produce(pair, tid, topic, [b"open"], 0)  # offset 2: the first of the open transaction
    plain_produce(pair, topic, b"3", b"4")
    held = fetched(pair.same("Fetch", 12, read_committed(fetch_body(topic, 0))))
    assert (held["high_watermark"], held["last_stable_offset"]) == (5, 2)
    assert [r[3] for batch in held["records"] for r in batch["records"]] == [b"0", b"1"]  # stops at the LSO
    pair.same("Fetch", 12, read_committed(fetch_body(topic, 2)))  # at the LSO: nothing yet
    pair.same("Fetch", 12, read_committed(fetch_body(topic, 3)))  # past it, below the high watermark
    assert (latest(pair, topic, 0), latest(pair, topic, 1)) == (5, 2)
    for version in range(2, 8):  # isolation_level from v2
        pair.same("ListOffsets", version, read_committed(list_offsets_body(topic, LATEST)))
    assert end(pair, tid, commit=True)["error_code"] == 0
    pair.same("Fetch", 12, read_committed(fetch_body(topic, 0)), retry_while=stable_at(6))
    assert (latest(pair, topic, 0), latest(pair, topic, 1)) == (6, 6)


def test_transactional_offsets_are_visible_after_the_commit_only(pair, names):
    topic, group, tid = names(), names("g"), names("txn")
    create(pair, topic, partitions=2)
    stable = lambda: offset_fetch_body(group, topic, (0, 1)) | {"require_stable": True}  # noqa: E731
    for commit, offsets in ((False, {0: 3, 1: 4}), (True, {0: 5, 1: 6})):
        init_transactional(pair, tid)  # the second time: the same producer id, the next epoch
        assert pair.same("AddOffsetsToTxn", 3, txn_body(tid, group_id=group), retry_while=concurrent
                         )["error_code"] == 0
        pair.same("TxnOffsetCommit", 3, txn_offset_commit_body(tid, group, topic, offsets))
        pending = pair.same("OffsetFetch", 8, offset_fetch_body(group, topic, (0, 1)))
        assert {p["committed_offset"] for p in pending["groups"][0]["topics"][0]["partitions"]} == {-1}
        # require_stable (v7+): UNSTABLE_OFFSET_COMMIT while the transaction is open (v7 per partition, v8 per group)
        v7 = pair.same("OffsetFetch", 7, stable())
        assert {p["error_code"] for p in v7["topics"][0]["partitions"]} == {ErrorCode.UNSTABLE_OFFSET_COMMIT}
        v8 = pair.same("OffsetFetch", 8, stable())["groups"][0]
        assert ErrorCode.UNSTABLE_OFFSET_COMMIT in {v8["error_code"]} | {
            p["error_code"] for p in v8["topics"][0]["partitions"]}
        assert end(pair, tid, commit=commit)["error_code"] == 0
        expected = offsets[0] if commit else -1
        pair.same("OffsetFetch", 8, stable(), retry_while=lambda a: a["groups"][0]["error_code"] != 0 or a[
            "groups"][0]["topics"][0]["partitions"][0]["committed_offset"] != expected)
        pair.same("OffsetFetch", 8, offset_fetch_body(group, topic, (0, 1)))


def test_a_second_init_producer_id_fences_the_first(pair, names):
    topic, tid = names(), names("txn")
    create(pair, topic)
    init_transactional(pair, tid, who="first")
    begin(pair, tid, topic, who="first")
    txn_produce(pair, tid, topic, [b"open"], 0, who="first")
    # The second producer's InitProducerId finds the transaction open: the coordinator aborts it (bumping the
    # epoch, which fences the first) and answers CONCURRENT_TRANSACTIONS until that is done; the client retries.
    first_answer = pair.same("InitProducerId", 4, {"transactional_id": tid, "transaction_timeout_ms": 60000,
                                                   "producer_id": -1, "producer_epoch": -1})
    assert first_answer["error_code"] == ErrorCode.CONCURRENT_TRANSACTIONS
    second = init_transactional(pair, tid, who="second")
    assert (second["error_code"], second["producer_id"], second["producer_epoch"]) == (0, "<producer-1>", 2)
    pair.same("Fetch", 12, read_committed(fetch_body(topic, 0)), retry_while=stable_at(2))
    for version in (1, 3):  # INVALID_PRODUCER_EPOCH before v2, PRODUCER_FENCED after
        pair.same("AddPartitionsToTxn", version, add_partitions_body(tid, {topic: [0]}, who="first"))
        pair.same("EndTxn", version, end_txn_body(tid, True, who="first"))
        pair.same("AddOffsetsToTxn", version, txn_body(tid, group_id=names("g"), who="first"))
    pair.same("Produce", 9, txn_produce_body(tid, topic, [b"late"], 1, who="first"))
    begin(pair, tid, topic, who="second")
    assert txn_produce(pair, tid, topic, [b"second"], 0, who="second")["base_offset"] == 2
    assert end(pair, tid, commit=True, who="second")["error_code"] == 0
    done = fetched(pair.same("Fetch", 12, read_committed(fetch_body(topic, 0)), retry_while=stable_at(4)))
    assert done["aborted_transactions"] == [{"producer_id": "<producer-1>", "first_offset": 0}]


def test_transactional_produce_at_every_version(pair, names):
    topic, tid = names(), names("txn")
    create(pair, topic)
    init_transactional(pair, tid)
    begin(pair, tid, topic)
    for sequence, version in enumerate(range(3, 11)):  # transactional_id from v3
        answer = pair.same("Produce", version, txn_produce_body(tid, topic, [b"v%d" % version], sequence),
                           retry_while=leader_not_ready)
        assert answer["responses"][0]["partition_responses"][0]["base_offset"] == sequence
    pair.same("Produce", 9, txn_produce_body(tid, topic, [b"v3"], 0),  # a duplicate of the first batch
              normalize=produce_without_error_details)
    pair.same("Produce", 9, txn_produce_body(tid, topic, [b"gap"], 10),  # a gap in the sequence
              normalize=produce_without_error_details)
    assert end(pair, tid, commit=True)["error_code"] == 0
    pair.same("Fetch", 12, read_committed(fetch_body(topic, 0)), retry_while=stable_at(9))


def test_init_producer_id_with_the_current_producer_bumps_the_epoch(pair, names):
    """KIP-360 (InitProducerId v3+): a transactional producer that names its current id and epoch gets the next
    epoch; the same request again is a retry (the same answer); an older epoch or another producer id is refused."""
    topic, tid = names(), names("txn")
    create(pair, topic)
    init_transactional(pair, tid)

    def naming(producer_id_delta: int = 0, epoch_delta: int = 0):
        return lambda side: {"transactional_id": tid, "transaction_timeout_ms": 60000,
                             "producer_id": side.vars["txn"][0] + producer_id_delta,
                             "producer_epoch": side.vars["txn"][1] + epoch_delta}

    for version, epoch in ((3, 1), (4, 2)):
        assert pair.same("InitProducerId", version, naming())["producer_epoch"] == epoch
        assert pair.same("InitProducerId", version, naming())["producer_epoch"] == epoch  # a retry
        for side in pair.sides:
            side.vars["txn"] = (pair.last(side)["producer_id"], pair.last(side)["producer_epoch"])
    for version in (3, 4):  # INVALID_PRODUCER_EPOCH before v4, PRODUCER_FENCED after
        pair.same("InitProducerId", version, naming(epoch_delta=-2))
        pair.same("InitProducerId", version, naming(producer_id_delta=1))
    begin(pair, tid, topic)
    assert txn_produce(pair, tid, topic, [b"after the bumps"], 0)["base_offset"] == 0
    assert end(pair, tid, commit=True)["error_code"] == 0


def test_a_transaction_past_its_timeout_is_aborted(pair, names):
    """The coordinator aborts a transaction older than its transaction_timeout_ms (checked every
    transaction.abort.timed.out.transaction.cleanup.interval.ms, 10 s on both) and bumps the epoch: the producer's
    own EndTxn is refused then."""
    topic, tid = names(), names("txn")
    create(pair, topic)
    init_transactional(pair, tid, timeout_ms=1000)
    begin(pair, tid, topic)
    txn_produce(pair, tid, topic, [b"too slow"], 0)
    aborted = pair.same("Fetch", 12, read_committed(fetch_body(topic, 0)), retry_while=stable_at(2))
    assert fetched(aborted)["aborted_transactions"] == [{"producer_id": "<producer-1>", "first_offset": 0}]
    for version in (1, 3):
        pair.same("EndTxn", version, end_txn_body(tid, True))
        pair.same("EndTxn", version, end_txn_body(tid, False))
    pair.same("AddPartitionsToTxn", 3, add_partitions_body(tid, {topic: [0]}))
    init_transactional(pair, tid)  # the producer starts over
    begin(pair, tid, topic)
    assert end(pair, tid, commit=True)["error_code"] == 0




def test_produce_to_a_partition_outside_the_transaction(pair, names):
    """A transactional batch for a partition AddPartitionsToTxn did not add: Kafka (transaction.partition.
    verification.enable, KIP-890) asks its coordinator and refuses it."""
    topic, tid = names(), names("txn")
    create(pair, topic, partitions=2)
    init_transactional(pair, tid)
    begin(pair, tid, topic)
    assert txn_produce(pair, tid, topic, [b"x"], 0, partition=1)["error_code"] == ErrorCode.INVALID_TXN_STATE


def test_txn_offset_commit_with_a_generation_for_a_group_that_does_not_exist(pair, names):
    topic, group, tid = names(), names("g"), names("txn")
    create(pair, topic)
    init_transactional(pair, tid)
    pair.same("AddOffsetsToTxn", 3, txn_body(tid, group_id=group))
    answer = pair.same("TxnOffsetCommit", 3, lambda side: txn_offset_commit_body(tid, group, topic, {0: 1})(side)
                       | {"generation_id": 1, "member_id": "nobody"})
    assert answer["topics"][0]["partitions"][0]["error_code"] == ErrorCode.ILLEGAL_GENERATION
