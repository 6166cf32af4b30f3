"""The bytes inside JoinGroup metadata and SyncGroup assignments for protocol type "consumer".

Kafka's ConsumerProtocol layout, shared with the Java client, librdkafka, kafkajs and aiokafka, so that
our consumers can be in one group with theirs. The layout is declared once, with the broker's, in
kafkalite.protocol.messages.data.consumer_protocol; this module maps it to the client's types.

Decoding reads the fields of the version it is given (a version newer than Kafka's newest as the newest)
and ignores any bytes after them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kafkalite.protocol.codec import decode_data, encode_data
from kafkalite.protocol.messages.data.consumer_protocol import ASSIGNMENT, PROTOCOL_TYPE, SUBSCRIPTION

__all__ = ["ASSIGNMENT_VERSION", "PROTOCOL_TYPE", "SUBSCRIPTION_VERSION", "Assignment", "Subscription",
           "decode_assignment", "decode_subscription", "encode_assignment", "encode_subscription"]

SUBSCRIPTION_VERSION = 1
ASSIGNMENT_VERSION = 1


@dataclass
class Subscription:
    topics: list[str]
    user_data: bytes | None = None
    owned_partitions: dict[str, list[int]] = field(default_factory=dict)
    generation_id: int = -1
    rack_id: str | None = None
    version: int = SUBSCRIPTION_VERSION


@dataclass
class Assignment:
    partitions: dict[str, list[int]]
    user_data: bytes | None = None
    version: int = ASSIGNMENT_VERSION


def _to_wire(tps: dict[str, list[int]]) -> list[dict]:
    return [{"topic": topic, "partitions": sorted(tps[topic])} for topic in sorted(tps)]


def _from_wire(rows: list[dict]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for row in rows:
        out.setdefault(row["topic"], []).extend(row["partitions"])
    return out


def encode_subscription(sub: Subscription) -> bytes:
    return encode_data(SUBSCRIPTION, sub.version, {
        "topics": sorted(sub.topics), "user_data": sub.user_data, "owned_partitions": _to_wire(sub.owned_partitions),
        "generation_id": sub.generation_id, "rack_id": sub.rack_id,
    })


def decode_subscription(data: bytes) -> Subscription:
    version, s = decode_data(SUBSCRIPTION, data, newer_as_latest=True, short_as_older=True)
    return Subscription(s["topics"], s["user_data"], _from_wire(s["owned_partitions"]), s["generation_id"],
                        s["rack_id"], version=version)


def encode_assignment(assignment: Assignment) -> bytes:
    return encode_data(ASSIGNMENT, assignment.version, {
        "assigned_partitions": _to_wire(assignment.partitions), "user_data": assignment.user_data,
    })


def decode_assignment(data: bytes) -> Assignment:
    if not data:
        return Assignment({})  # an empty assignment is sent as zero bytes by some clients
    version, a = decode_data(ASSIGNMENT, data, newer_as_latest=True)
    return Assignment(_from_wire(a["assigned_partitions"]), a["user_data"], version=version)
