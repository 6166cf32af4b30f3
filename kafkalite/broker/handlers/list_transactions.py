"""ListTransactions (key 66): versions 0-2. The transactional ids this coordinator holds (kafka-transactions.sh
list), filtered by state (Kafka's state names), producer id, (v1) how long the transaction has run and (v2) a
regular expression the whole transactional id must match; each empty filter matches all. State filters Kafka does
not know are echoed back in UnknownStateFilters. The expression is Python's `re` (Java's syntax for the common
cases); one that does not compile is INVALID_REGULAR_EXPRESSION."""

from __future__ import annotations

import re

from kafkalite.broker.registry import handler
from kafkalite.protocol.errors import ErrorCode
from kafkalite.txn import TxnState


@handler("ListTransactions")
async def handle(ctx, request):
    pattern = request["transactional_id_pattern"]
    try:
        id_pattern = re.compile(pattern) if pattern else None
    except (re.error, RecursionError):
        return {"throttle_time_ms": 0, "error_code": ErrorCode.INVALID_REGULAR_EXPRESSION}
    names = request["state_filters"]
    unknown = list(dict.fromkeys(name for name in names if TxnState.from_kafka_name(name) is None))
    # an unknown state matches nothing (so only unknown ones match no transaction at all), as in Kafka
    states = {TxnState.from_kafka_name(name) for name in names} - {None} if names else None
    code, matches = ctx.transactions.list_transactions(states, set(request["producer_id_filters"]),
                                                       request["duration_filter"], id_pattern)
    if code != ErrorCode.NONE:
        return {"throttle_time_ms": 0, "error_code": code}
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "unknown_state_filters": unknown,
            "transaction_states": [{"transactional_id": meta.transactional_id, "producer_id": meta.producer_id,
                                    "transaction_state": meta.state.kafka_name} for meta in matches]}
