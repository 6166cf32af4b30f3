"""Differential scenarios of the transaction admin APIs and AddPartitionsToTxn (all its versions, the client's
form 0-3 and the batched broker form 4-5), run by test_every_version.py at every version both brokers share."""

from __future__ import annotations

import time

from diff_harness import assert_equal, create_topic_body, normalize_response, produce_body, wait_for_topic
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.record_batch import build_batch

WARM_UP_ID = "diff-txn-warm-up"
TXN_TIMEOUT_MS = 60_000
# What a transactional request may answer while Kafka still loads __transaction_state (or retries its own
# abort): polled until it is over, on each side, before the answers are compared.
NOT_SETTLED = {ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, ErrorCode.NOT_COORDINATOR, ErrorCode.CONCURRENT_TRANSACTIONS,
               ErrorCode.COORDINATOR_NOT_AVAILABLE}


def poll(side, api: str, version: int, body: dict, error_of, timeout: float = 60.0) -> dict:
    """The first answer whose error is not one of NOT_SETTLED."""
    deadline = time.monotonic() + timeout
    while True:
        answer = side.request(api, version, body)
        assert isinstance(answer, dict), f"{side.name}: {api} v{version}: {answer}"
        if error_of(answer) not in NOT_SETTLED:
            return answer
        assert time.monotonic() < deadline, f"{side.name}: {api} still answers {error_of(answer)}"
        time.sleep(0.2)  # no event to wait on: Kafka loads the transaction log in the background


def ready_for_transactions(pair) -> None:
    """Kafka creates __transaction_state on the first FindCoordinator for a transactional id and loads it in the
    background; kafkalite has loaded it at start. Both then know no WARM_UP_ID."""
    for side in pair.sides:
        poll(side, "FindCoordinator", 4, {"key_type": 1, "coordinator_keys": [WARM_UP_ID]},
             lambda a: a["coordinators"][0]["error_code"])
        poll(side, "DescribeTransactions", 0, {"transactional_ids": [WARM_UP_ID]},
             lambda a: a["transaction_states"][0]["error_code"])


def create(pair, topic: str, partitions: int) -> None:
    assert pair.same("CreateTopics", 7, create_topic_body(topic, partitions))["topics"][0]["error_code"] == 0
    for side in pair.sides:
        wait_for_topic(side, topic, partitions)


def init_transactional(pair, txn_id: str) -> None:
    """InitProducerId for `txn_id` on both (each polled until settled, then compared); side.vars[txn_id] holds
    each side's (producer id, epoch)."""
    body = {"transactional_id": txn_id, "transaction_timeout_ms": TXN_TIMEOUT_MS, "producer_id": -1,
            "producer_epoch": -1}
    answers = []
    for side in pair.sides:
        answer = poll(side, "InitProducerId", 4, body, lambda a: a["error_code"])
        side.vars[txn_id] = (answer["producer_id"], answer["producer_epoch"])
        answers.append(normalize_response(side, answer))  # its producer id becomes the side's next alias
    assert_equal("InitProducerId v4", *answers)
    assert answers[0]["error_code"] == 0


def client_add(txn_id: str, *partitions: tuple[str, int], epoch_offset: int = 0):
    """AddPartitionsToTxn's client form (v0-3), built for each side's producer."""
    def body(side):
        pid, epoch = side.vars[txn_id]
        return {"transactional_id": txn_id, "producer_id": pid, "producer_epoch": epoch + epoch_offset,
                "topics": by_topic(partitions)}
    return body


def batched_add(*transactions: tuple[str, bool, tuple, int]):
    """AddPartitionsToTxn's batched form (v4+): (transactional id, verify only, partitions, epoch offset) each;
    an id the side does not know goes with producer id 424242."""
    def body(side):
        out = []
        for txn_id, verify_only, partitions, epoch_offset in transactions:
            pid, epoch = side.vars.get(txn_id, (424242, 0))
            out.append({"transactional_id": txn_id, "producer_id": pid, "producer_epoch": epoch + epoch_offset,
                        "verify_only": verify_only, "topics": by_topic(partitions)})
        return {"transactions": out}
    return body


def by_topic(partitions) -> list[dict]:
    topics: dict[str, list[int]] = {}
    for name, index in partitions:
        topics.setdefault(name, []).append(index)
    return [{"name": name, "partitions": indexes} for name, indexes in topics.items()]


def abort(pair, txn_id: str) -> None:
    """Ends the scenario's transaction (Kafka answers before its markers are written: not compared after)."""
    pair.same("EndTxn", 3, lambda side: {"transactional_id": txn_id, "producer_id": side.vars[txn_id][0],
                                         "producer_epoch": side.vars[txn_id][1], "committed": False})


def start_time_as_set(side, answer: dict):
    """Each broker's clock stamps the transaction's start: compared as set (a time) or not (-1)."""
    for state in answer["transaction_states"]:
        start = state["transaction_start_time_ms"]
        state["transaction_start_time_ms"] = "<set>" if start > 0 else start
    return normalize_response(side, answer)


def scenario_add_partitions_to_txn(pair, v, names):
    ready_for_transactions(pair)
    topic, txn = names(), names("txn")
    create(pair, topic, 2)
    init_transactional(pair, txn)
    missing = (names("unknown"), 0)
    if v < 4:
        pair.same("AddPartitionsToTxn", v, client_add(txn, (topic, 0)))
        pair.same("AddPartitionsToTxn", v, client_add(txn, (topic, 0)))  # already in
        pair.same("AddPartitionsToTxn", v, client_add(txn, (topic, 1), missing))
        pair.same("AddPartitionsToTxn", v, client_add(txn, (topic, 1), epoch_offset=1))  # fenced
        pair.same("AddPartitionsToTxn", v, client_add(txn, (topic, 1), ("__consumer_offsets", 0)))
    else:
        pair.same("AddPartitionsToTxn", v, batched_add((txn, True, ((topic, 0),), 0)))  # no transaction yet
        pair.same("AddPartitionsToTxn", v, batched_add((txn, False, ((topic, 0),), 0)))
        pair.same("AddPartitionsToTxn", v, batched_add((txn, True, ((topic, 0), (topic, 1)), 0),
                                                       (names("txn"), True, ((topic, 0),), 0),  # unknown id
                                                       ("", True, ((topic, 0),), 0)))
        pair.same("AddPartitionsToTxn", v, batched_add((txn, True, ((topic, 0),), 1)))  # fenced
        pair.same("AddPartitionsToTxn", v, batched_add((txn, True, ((topic, 0), missing), 0)))
    abort(pair, txn)


def scenario_describe_transactions(pair, v, names):
    ready_for_transactions(pair)
    topic, txn = names(), names("txn")
    create(pair, topic, 2)
    pair.same("DescribeTransactions", v, {"transactional_ids": [txn, ""]})  # unknown, empty
    init_transactional(pair, txn)
    pair.same("DescribeTransactions", v, {"transactional_ids": [txn]}, normalize=start_time_as_set)  # Empty
    pair.same("AddPartitionsToTxn", 3, client_add(txn, (topic, 1)))
    pair.same("DescribeTransactions", v, {"transactional_ids": [txn]}, normalize=start_time_as_set)  # Ongoing
    abort(pair, txn)


def scenario_list_transactions(pair, v, names):
    ready_for_transactions(pair)
    topic, txn = names(), names("txn")
    create(pair, topic, 1)
    init_transactional(pair, txn)
    pair.same("AddPartitionsToTxn", 3, client_add(txn, (topic, 0)))
    # Kafka's log holds the other scenarios' transactions too: each request filters by this one's producer id
    def body(states, duration=-1, pattern=None):
        return lambda side: {"state_filters": states, "producer_id_filters": [side.vars[txn][0]],
                             "duration_filter": duration, "transactional_id_pattern": pattern}
    pair.same("ListTransactions", v, body([]))
    pair.same("ListTransactions", v, body(["Ongoing", "Bogus"]))
    pair.same("ListTransactions", v, body(["Bogus"]))  # only unknown states: none match
    pair.same("ListTransactions", v, body(["CompleteCommit", "Empty"]))
    if v >= 1:
        pair.same("ListTransactions", v, body([], duration=3_600_000))  # not running that long
    if v >= 2:
        for pattern in ("", "diff-.*", "diff", ".*txn.*", "(?i)DIFF.*", "nothing-.*"):
            pair.same("ListTransactions", v, body([], pattern=pattern))
        pair.same("ListTransactions", v, body([], pattern="["))  # does not compile
    abort(pair, txn)


def scenario_describe_producers(pair, v, names):
    topic = names()
    create(pair, topic, 2)
    pair.same("InitProducerId", 4, {"transactional_id": None, "transaction_timeout_ms": 60000,
                                    "producer_id": -1, "producer_epoch": -1})
    for side in pair.sides:
        side.vars["pid"] = pair.last(side)["producer_id"]
    sent_at = int(time.time() * 1000) - 5_000  # a producer's clock, behind both brokers'
    for seq, values in ((0, (b"a", b"b")), (2, (b"c",))):
        pair.same("Produce", 9, lambda side: produce_body(topic, build_batch(
            [(None, value) for value in values], timestamps=sent_at, producer_id=side.vars["pid"], producer_epoch=0,
            base_sequence=seq)))

    def last_timestamp_checked(side, answer):
        # Kept difference (protocol.md): Kafka reports the batch's max timestamp, kafkalite when it appended it
        for t in answer["topics"]:
            for p in t["partitions"]:
                for producer in p["active_producers"]:
                    stamp = producer.pop("last_timestamp")
                    assert stamp == sent_at if side.name == "kafka" else stamp > sent_at, (side.name, stamp)
        return normalize_response(side, answer)

    pair.same("DescribeProducers", v, {"topics": [{"name": topic, "partition_indexes": [0, 1, 7]},
                                                  {"name": names("unknown"), "partition_indexes": [0]}]},
              normalize=last_timestamp_checked)


TXN_SCENARIOS = {
    "AddPartitionsToTxn": scenario_add_partitions_to_txn, "DescribeTransactions": scenario_describe_transactions,
    "ListTransactions": scenario_list_transactions, "DescribeProducers": scenario_describe_producers,
}
