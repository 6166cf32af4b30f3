"""Differential testing: the same requests to Apache Kafka and to kafkalite, answers compared once normalized.

A `Pair` holds one raw connection to each broker (a `Side`). `pair.same(api, version, body)` sends the request to
Kafka, then the same request to kafkalite, normalizes both answers and asserts they are equal. A body may be a
function of the side, for values that each broker chose itself (a producer id, a member id) and that later
requests must echo back; `side.vars` keeps them.

Normalizing removes what legitimately differs between two brokers, and nothing else:
- node ids, hosts, ports (the broker's own become "<node>", "<host>", "<port>"), cluster ids, topic ids;
- throttle times and error message texts (codes are compared, words are not);
- ids a broker makes up (member ids, producer ids): each side's become "<member-1>", "<member-2>", ... in the
  order they first appear, so that "the same member as before" is still compared;
- record batches are decoded into their offsets, producer fields and records, so that a batch's CRC or byte
  layout (same content) does not matter; a transaction marker's timestamps (the broker's clock) become
  "<marker time>";
- lists of structs are compared as sets (sorted by their names), except synonyms, which are in precedence order;
- config entries only one broker has are left out; they are listed in `KAFKA_ONLY_TOPIC_CONFIGS` and
  `KAFKALITE_ONLY_TOPIC_CONFIGS`, and test_configs.py checks those lists are exact.
A difference that is kept (protocol.md, "Differences from Apache Kafka") is not normalized away: the test that
meets it asserts both answers as they are, so that a change on either side shows.
"""

from __future__ import annotations

import os
import pprint
import socket
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from kafkalite.protocol import wire
from kafkalite.protocol.errors import DecodeError
from kafkalite.protocol.messages import APIS_BY_NAME
from kafkalite.protocol.record_batch import CONTROL_BIT, TRANSACTIONAL_BIT, build_batch, iter_batches_lenient

CLOSED = "<connection closed>"
NO_ANSWER = "<no answer within the timeout, connection still open>"
NULL_UUID = uuid.UUID(int=0)
RETRY_TIMEOUT_S = 30.0
MARKER_TIME = "<marker time>"

# Keys whose values are the broker's own identity or its wall clock: compared as placeholders.
NODE_KEYS = frozenset({"node_id", "leader_id", "controller_id", "broker_id"})
NODE_LIST_KEYS = frozenset({"replica_nodes", "isr_nodes", "broker_ids"})
DROPPED_KEYS = frozenset({"throttle_time_ms", "error_message", "cluster_id", "topic_id", "rack",
                          "batch_index_error_message", "documentation"})
DEFAULT_CONFIG = 5  # DescribeConfigs config source
# Kept difference (protocol.md): retention.ms, flush.ms and segment.ms list no default synonym in Kafka (its
# log.retention.ms, log.flush.interval.ms and log.roll.ms are unset); kafkalite lists these defaults.
DEFAULTS_KAFKA_HIDES = frozenset({"log.retention.ms", "log.flush.interval.ms", "segment.ms"})
ALIASED_KEYS = {"member_id": "member", "leader": "member", "producer_id": "producer"}

# Topic configs Apache Kafka 4.x describes and kafkalite does not have.
KAFKA_ONLY_TOPIC_CONFIGS = frozenset({
    "compression.gzip.level", "compression.lz4.level", "compression.zstd.level",  # kafkalite never recompresses
    "follower.replication.throttled.replicas", "leader.replication.throttled.replicas",  # no replication yet
    "unclean.leader.election.enable",
    "local.retention.bytes", "local.retention.ms", "remote.log.copy.disable", "remote.log.delete.on.disable",
    "remote.storage.enable",  # no tiered storage
    "preallocate", "segment.jitter.ms",
})
# Topic configs kafkalite describes and Kafka does not.
# kafkalite.durability is kafkalite's fsync policy; message.timestamp.difference.max.ms is the deprecated form
# of message.timestamp.before/after.max.ms that Kafka 4 removed and kafkalite still accepts.
KAFKALITE_ONLY_TOPIC_CONFIGS = frozenset({"kafkalite.durability", "message.timestamp.difference.max.ms"})
# Configs both have whose source differs only because the reference Kafka sets them (kafka_reference.py sets
# min.insync.replicas=1, which KRaft reports as a cluster-wide dynamic default).
REFERENCE_SET_CONFIGS = frozenset({"min.insync.replicas"})
ONE_SIDED_CONFIGS = KAFKA_ONLY_TOPIC_CONFIGS | KAFKALITE_ONLY_TOPIC_CONFIGS | REFERENCE_SET_CONFIGS


@dataclass
class Side:
    """One broker as the harness sees it: a connection, its identity, and what a scenario remembers of it."""

    name: str
    port: int
    timeout: float = 10.0
    node_id: int | None = None
    vars: dict = field(default_factory=dict)
    aliases: dict = field(default_factory=dict)
    sock: socket.socket | None = None
    correlation_id: int = 0

    def connect(self) -> "Side":
        if self.sock is not None:
            self.sock.close()
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        return self

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send_frame(self, frame: bytes) -> None:
        if self.sock is None:
            self.connect()
        self.sock.settimeout(self.timeout)  # a test may have changed it since the connection opened
        self.sock.sendall(frame)

    def read_frame(self) -> bytes | str:
        """The next response frame without its size prefix, or CLOSED when the broker closed the connection."""
        head = self._read_exactly(4)
        if head is None:
            return CLOSED
        (size,) = struct.unpack(">i", head)
        body = self._read_exactly(size)
        return CLOSED if body is None else body

    def _read_exactly(self, n: int) -> bytes | None:
        chunks = bytearray()
        while len(chunks) < n:
            try:
                data = self.sock.recv(n - len(chunks))
            except (ConnectionResetError, BrokenPipeError):
                return None
            if not data:
                return None
            chunks += data
        return bytes(chunks)

    def encode(self, api: str, version: int, body: dict) -> bytes:
        self.correlation_id += 1
        return wire.join(wire.encode_request(APIS_BY_NAME[api].key, version, self.correlation_id, "diff", body))

    def request(self, api: str, version: int, body: dict) -> dict | str:
        """Send one request; the decoded response, or CLOSED. The connection is reopened after a close."""
        try:
            self.send_frame(self.encode(api, version, body))
        except (ConnectionResetError, BrokenPipeError):
            self.close()
            return CLOSED
        try:
            frame = self.read_frame()
        except socket.timeout:
            self.close()
            return NO_ANSWER
        if frame == CLOSED:
            self.close()
            return CLOSED
        correlation_id, response = wire.decode_response(APIS_BY_NAME[api].key, version, memoryview(frame))
        assert correlation_id == self.correlation_id, f"{self.name}: answer to another request"
        return response

    def raw(self, frame: bytes) -> bytes | str:
        """Send exact bytes on a fresh connection; the first answer frame, or CLOSED."""
        self.connect()
        try:
            self.sock.sendall(frame)
            answer = self.read_frame()
        except (ConnectionResetError, BrokenPipeError):
            answer = CLOSED
        except socket.timeout:
            answer = NO_ANSWER
        self.close()
        return answer

    def alias(self, kind: str, value):
        """A stable placeholder for an id this broker made up (the first member is <member-1>, and so on)."""
        if value in (None, "", -1):
            return value
        names = self.aliases.setdefault(kind, {})
        if value not in names:
            names[value] = f"<{kind}-{len(names) + 1}>"
        return names[value]


Body = dict | Callable[[Side], dict]


class Pair:
    def __init__(self, kafka: Side, kafkalite: Side):
        self.kafka = kafka
        self.kafkalite = kafkalite
        self.sides = (kafka, kafkalite)

    def close(self) -> None:
        for side in self.sides:
            side.close()

    def both(self, api: str, version: int, body: Body, normalize=None, retry_while=None) -> tuple:
        """The normalized answers of Kafka and kafkalite to one request (each built for its side).
        `retry_while(answer)`: resend (as a client would) while it holds, up to RETRY_TIMEOUT_S."""
        normalize = normalize or normalize_response
        answers = []
        for side in self.sides:
            request = body(side) if callable(body) else body
            answer = side.request(api, version, request)
            deadline = time.monotonic() + RETRY_TIMEOUT_S
            while retry_while is not None and not isinstance(answer, str) and retry_while(answer):
                assert time.monotonic() < deadline, f"{side.name}: {api} v{version} still answers {answer}"
                time.sleep(0.05)  # polling: a broker's background work (transaction markers) has no event to wait on
                answer = side.request(api, version, request)
            side.vars.setdefault("answers", []).append(answer)
            side.vars["last"] = answer
            answers.append(answer if isinstance(answer, str) else normalize(side, answer))
        return tuple(answers)

    def same(self, api: str, version: int, body: Body, normalize=None, retry_while=None):
        """Both brokers answer alike; the (normalized) answer."""
        kafka, kafkalite = self.both(api, version, body, normalize, retry_while)
        if os.environ.get("DIFF_TRACE"):  # DIFF_TRACE=1 pytest -s: every exchange, to see which one differs
            print(f"{api} v{version}\n  kafka:     {kafka}\n  kafkalite: {kafkalite}")
        assert_equal(f"{api} v{version}", kafka, kafkalite)
        return kafka

    def last(self, side: Side) -> dict:
        """The raw (not normalized) answer this side gave to the last request."""
        return side.vars["last"]


def assert_equal(what: str, kafka, kafkalite) -> None:
    if kafka != kafkalite:
        raise AssertionError(f"{what}: kafkalite answers differently from Apache Kafka\n"
                             f"--- Kafka:\n{pprint.pformat(kafka, width=120)}\n"
                             f"--- kafkalite:\n{pprint.pformat(kafkalite, width=120)}\n"
                             f"--- first difference: {first_difference(kafka, kafkalite)}")


def first_difference(a, b, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if a.get(key, "<absent>") != b.get(key, "<absent>"):
                return first_difference(a.get(key, "<absent>"), b.get(key, "<absent>"), f"{path}.{key}")
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return first_difference(x, y, f"{path}[{i}]")
    return f"{path}: Kafka {a!r}, kafkalite {b!r}"


def normalize_response(side: Side, value, key: str | None = None):
    """A decoded answer with what legitimately differs between brokers replaced (see the module docstring)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in DROPPED_KEYS:
                continue
            if k == "records":
                out[k] = decode_records(side, v)
            elif k == "configs" and isinstance(v, list):
                out[k] = normalize_response(side, [c for c in v if c.get("name") not in ONE_SIDED_CONFIGS], k)
            else:
                out[k] = normalize_response(side, v, k)
        return out
    if isinstance(value, list):
        items = [normalize_response(side, v, key) for v in value]
        if key in NODE_LIST_KEYS:
            return [own_node(side, v) for v in items]
        if key == "synonyms":  # in order of precedence
            return [v for v in items if not (v["source"] == DEFAULT_CONFIG and v["name"] in DEFAULTS_KAFKA_HIDES)]
        if items and all(isinstance(v, dict) for v in items):
            items.sort(key=sort_key)
        return items
    if key in NODE_KEYS:
        return own_node(side, value)
    if key == "host":
        return "<host>" if value in ("127.0.0.1", "localhost") else value
    if key == "port":
        return "<port>" if value == side.port else value
    if key in ALIASED_KEYS:
        return side.alias(ALIASED_KEYS[key], value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def own_node(side: Side, value):
    return "<node>" if side.node_id is not None and value == side.node_id else value


def sort_key(item: dict) -> tuple:
    """Lists of structs are compared as sets keyed by their names: Kafka does not keep request order everywhere."""
    return tuple(str(item.get(k, "")) for k in ("name", "topic", "group_id", "resource_name", "partition_index",
                                                "partition", "index", "key", "member_id", "api_key"))


def decode_records(side: Side, records) -> list | None:
    """A records field as the batches it holds: offsets, producer fields and each record's content."""
    if records is None:
        return None
    batches = []
    try:
        for batch in iter_batches_lenient(records):
            # A transaction marker is stamped with the broker's clock when the coordinator writes it.
            stamp = (lambda _: MARKER_TIME) if batch.attributes & CONTROL_BIT else (lambda t: t)
            batches.append({
                "base_offset": batch.base_offset, "last_offset_delta": batch.last_offset_delta,
                "partition_leader_epoch": batch.partition_leader_epoch, "attributes": batch.attributes,
                "producer_id": side.alias("producer", batch.producer_id), "producer_epoch": batch.producer_epoch,
                "base_sequence": batch.base_sequence, "max_timestamp": stamp(batch.max_timestamp),
                "records": [(r.offset, stamp(r.timestamp), r.key, r.value, r.headers) for r in batch.records()],
            })
    except DecodeError as e:
        return [f"undecodable records: {e}"]
    return batches


def produce_without_error_details(side: Side, answer: dict) -> dict:
    """A Produce answer without what Kafka fills in unevenly on a rejected batch (kept differences, protocol.md):
    the log start offset (Kafka sends it for some errors and -1 for others) and record_errors (Kafka names the
    offending record for INVALID_TIMESTAMP; kafkalite leaves the list empty)."""
    for topic in answer["responses"]:
        for part in topic["partition_responses"]:
            if part["error_code"]:
                part.pop("log_start_offset")
                part.pop("record_errors")
    return normalize_response(side, answer)


def configs_by_name(result: dict) -> dict[str, dict]:
    """A DescribeConfigs result's entries keyed by name, with the synonyms as (name, value, source) tuples."""
    out = {}
    for entry in result["configs"]:
        entry = dict(entry)
        entry["synonyms"] = [(s["name"], s["value"], s["source"]) for s in entry.get("synonyms", [])]
        out[entry.pop("name")] = entry
    return out


# ---------------------------------------------------------------- request bodies, for every version at once
# Each body carries the fields of the API's highest version; the codec leaves out what a version lacks.

def create_topic_body(name: str, partitions: int = 1, configs: dict | None = None, validate_only: bool = False,
                      replication_factor: int = 1) -> dict:
    return {"topics": [{"name": name, "num_partitions": partitions, "replication_factor": replication_factor,
                        "assignments": [],
                        "configs": [{"name": k, "value": v} for k, v in (configs or {}).items()]}],
            "timeout_ms": 30000, "validate_only": validate_only}


def produce_body(topic: str, records, partition: int = 0, acks: int = -1) -> dict:
    return {"transactional_id": None, "acks": acks, "timeout_ms": 30000,
            "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": records}]}]}


def fetch_body(topic: str, offset: int, partition: int = 0, max_bytes: int = 1 << 20) -> dict:
    return {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": max_bytes, "isolation_level": 0,
            "session_id": 0, "session_epoch": -1,
            "topics": [{"topic": topic, "partitions": [{"partition": partition, "current_leader_epoch": -1,
                                                        "fetch_offset": offset, "last_fetched_epoch": -1,
                                                        "log_start_offset": -1, "partition_max_bytes": max_bytes}]}],
            "forgotten_topics_data": [], "rack_id": ""}


def list_offsets_body(topic: str, timestamp: int, partitions=(0,)) -> dict:
    return {"replica_id": -1, "isolation_level": 0,
            "topics": [{"name": topic, "partitions": [{"partition_index": p, "current_leader_epoch": -1,
                                                       "timestamp": timestamp} for p in partitions]}]}


def metadata_body(topics: list[str] | None, auto_create: bool = False) -> dict:
    return {"topics": None if topics is None else [{"topic_id": NULL_UUID, "name": t} for t in topics],
            "allow_auto_topic_creation": auto_create, "include_cluster_authorized_operations": False,
            "include_topic_authorized_operations": False}


def describe_configs_body(resource_type: int, name: str, keys: list[str] | None = None,
                          synonyms: bool = True) -> dict:
    return {"resources": [{"resource_type": resource_type, "resource_name": name, "configuration_keys": keys}],
            "include_synonyms": synonyms, "include_documentation": False}


def offset_commit_body(group: str, topic: str, offsets: dict[int, int], generation: int = -1,
                       member: str = "") -> dict:
    return {"group_id": group, "generation_id_or_member_epoch": generation, "member_id": member,
            "group_instance_id": None, "retention_time_ms": -1,
            "topics": [{"name": topic, "partitions": [
                {"partition_index": p, "committed_offset": o, "committed_leader_epoch": -1,
                 "committed_metadata": "m"} for p, o in offsets.items()]}]}


def offset_fetch_body(group: str, topic: str | None, partitions=(0,)) -> dict:
    topics = None if topic is None else [{"name": topic, "partition_indexes": list(partitions)}]
    return {"group_id": group, "topics": topics, "groups": [{"group_id": group, "topics": topics}],
            "require_stable": False}


def join_group_body(group: str, member_id: str, protocols=(("range", b"\x00\x01"),),
                    session_timeout_ms: int = 60000) -> dict:
    # Timeouts long enough that a stalled machine never expires a member mid-scenario (Kafka then deletes the
    # group: CI once saw "Dead" where a join had just completed); no scenario waits for one to run out.
    return {"group_id": group, "session_timeout_ms": session_timeout_ms, "rebalance_timeout_ms": 60000,
            "member_id": member_id, "group_instance_id": None, "protocol_type": "consumer",
            "protocols": [{"name": name, "metadata": meta} for name, meta in protocols]}



def wait_for_topic(side: Side, topic: str, partitions: int | None, timeout: float = 30.0) -> None:
    """Until this broker's Metadata shows the topic with that many led partitions (None: the topic is gone).
    Kafka answers CreateTopics, CreatePartitions and DeleteTopics when its controller has decided, before its
    own metadata cache shows the change; kafkalite's answer comes after the change, so it passes at once."""
    deadline = time.monotonic() + timeout
    while True:
        answer = side.request("Metadata", 12, metadata_body([topic]))
        found = answer["topics"][0]
        if partitions is None:
            if found["error_code"] == 3:
                return
        elif found["error_code"] == 0 and len(found["partitions"]) == partitions and all(
                p["leader_id"] >= 0 for p in found["partitions"]):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{side.name}: {topic} not settled after {timeout:.0f}s: {found}")
        time.sleep(0.02)  # polling: Kafka's metadata cache gives no event to wait on


# ---------------------------------------------------------------- transactions
# A transactional producer's id and epoch are each broker's own: side.vars[who] = (producer_id, producer_epoch),
# and the bodies below are functions of the side that fill them in.

CONCURRENT_TRANSACTIONS = 51
NOT_LEADER_OR_FOLLOWER = 6
# The same on both sides, so that fetched batches compare equal; now, as an old timestamp would make Kafka roll
# (segment.ms) or delete (retention.ms) the segment, which a Fetch reads no further than.
TXN_TIMESTAMP = int(time.time() * 1000)


def concurrent(answer: dict) -> bool:
    """A transaction coordinator still finishing the previous transaction (Kafka answers EndTxn before its
    markers are written): clients retry. Any error code of the answer counts."""
    return CONCURRENT_TRANSACTIONS in error_codes(answer)


def leader_not_ready(answer: dict) -> bool:
    """retry_while for a Produce: Kafka can answer NOT_LEADER_OR_FOLLOWER to the first batch for a partition its
    metadata already shows led (a client retries)."""
    return NOT_LEADER_OR_FOLLOWER in error_codes(answer)


def error_codes(value) -> set[int]:
    if isinstance(value, dict):
        return set().union(*(error_codes(v) if k not in ("error_code", "partition_error_code") else {v}
                             for k, v in value.items()))
    if isinstance(value, list):
        return set().union(*(error_codes(v) for v in value))
    return set()


def init_transactional(pair: "Pair", transactional_id: str, who: str = "txn", version: int = 4,
                       timeout_ms: int = 60000) -> dict:
    """InitProducerId for a transactional id (retried while the coordinator aborts its open transaction); each
    side's producer id and epoch are kept in side.vars[who]."""
    answer = pair.same("InitProducerId", version, {"transactional_id": transactional_id,
                                                  "transaction_timeout_ms": timeout_ms, "producer_id": -1,
                                                  "producer_epoch": -1}, retry_while=concurrent)
    for side in pair.sides:
        side.vars[who] = (pair.last(side)["producer_id"], pair.last(side)["producer_epoch"])
    return answer


def txn_body(transactional_id: str, who: str = "txn", epoch_delta: int = 0, producer_id_delta: int = 0, **fields):
    """A transaction request's body from the producer `who` (a wrong epoch or producer id by a delta)."""
    def body(side: Side) -> dict:
        producer_id, epoch = side.vars[who]
        return {"transactional_id": transactional_id, "producer_id": producer_id + producer_id_delta,
                "producer_epoch": epoch + epoch_delta, **fields}
    return body


def add_partitions_body(transactional_id: str, partitions: dict[str, list[int]], **kw):
    return txn_body(transactional_id, topics=[{"name": t, "partitions": ps} for t, ps in partitions.items()], **kw)


def end_txn_body(transactional_id: str, commit: bool, **kw):
    return txn_body(transactional_id, committed=commit, **kw)


def txn_offset_commit_body(transactional_id: str, group: str, topic: str, offsets: dict[int, int],
                           member: str | None = None, generation_delta: int = 0, **kw):
    """TxnOffsetCommit; with `member` (v3+) the group member's id and generation as side.vars[member] and
    side.vars[member + '.generation'] hold them, otherwise a commit from outside the group (-1, "")."""
    inner = txn_body(transactional_id, group_id=group, group_instance_id=None, topics=[{"name": topic, "partitions": [
        {"partition_index": p, "committed_offset": o, "committed_leader_epoch": -1, "committed_metadata": "txn"}
        for p, o in offsets.items()]}], **kw)

    def body(side: Side) -> dict:
        generation = side.vars[member + ".generation"] + generation_delta if member else -1
        return inner(side) | {"generation_id": generation, "member_id": side.vars[member] if member else ""}
    return body


def txn_produce_body(transactional_id: str, topic: str, values: list[bytes], sequence: int, partition: int = 0,
                     who: str = "txn", epoch_delta: int = 0, timestamp: int | None = None):
    """Produce v3+ of one transactional batch (the transactional bit, the producer's id, epoch and sequence)."""
    def body(side: Side) -> dict:
        producer_id, epoch = side.vars[who]
        records = build_batch([(None, v) for v in values], timestamps=TXN_TIMESTAMP if timestamp is None else timestamp,
                              producer_id=producer_id, producer_epoch=epoch + epoch_delta, base_sequence=sequence,
                              attributes=TRANSACTIONAL_BIT)
        return produce_body(topic, records, partition) | {"transactional_id": transactional_id}
    return body


def read_committed(body: dict) -> dict:
    """A Fetch or ListOffsets body at isolation level READ_COMMITTED."""
    return body | {"isolation_level": 1}


def stable_at(offset: int):
    """retry_while for a read_committed Fetch of one partition: until its last stable offset is `offset` and the
    records reach it (Kafka writes the markers after answering EndTxn)."""
    def unsettled(answer: dict) -> bool:
        part = answer["responses"][0]["partitions"][0]
        ends = [b.base_offset + b.last_offset_delta + 1 for b in iter_batches_lenient(part["records"] or b"")]
        return part["last_stable_offset"] != offset or (ends[-1] if ends else 0) != offset
    return unsettled
