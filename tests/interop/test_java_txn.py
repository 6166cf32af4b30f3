"""Transactions with the Apache Kafka Java client (kafka-clients 4.1) against a live kafkalite broker.

One run of the Java driver's `txn` subcommand (tests/interop/java TxnCheck: one JVM) goes through every
scenario and prints what it saw; the test holds the expectations, and librdkafka cross-checks what is stored.
With JAVA_INTEROP_BROKER=kafka the same test runs against Apache Kafka, to confirm the expectations.
"""

from __future__ import annotations


import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, Producer
from confluent_kafka.admin import AdminClient

from test_java_client import JavaProcess, create_topic, driver_command, start_broker
from txn_reading import read_values

pytestmark = pytest.mark.interop

PREFIX = "jtxn"


@pytest.fixture(scope="session")
def java_driver() -> list[str]:
    return driver_command()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    proc = start_broker(str(tmp_path_factory.mktemp("java-txn-broker")))
    yield proc
    proc.kill()


def read_all(bootstrap: str, topic: str, partitions: int, isolation: str) -> list[str]:
    return read_values(bootstrap, topic, partitions, isolation, "jtxn-cross-check")


def test_java_transactions(broker, java_driver):
    """The Java client's transactions, scenario after scenario (one JVM):

    - commit and abort across 3 partitions, then a transaction left open: a read_committed Java consumer's end
      offsets are the last stable offsets (below the high watermarks, which count the open records), it reads
      up to them exactly the committed records (never the aborted or the open ones), and once the open
      transaction commits it reads its records; a fresh read_committed consumer reads committed + open records,
      each once; librdkafka read_uncommitted finds the aborted records in the log all the same;
    - a second producer with the same transactional.id fences the first: the zombie's commit gets
      ProducerFencedException and its records are aborted, the successor's are committed;
    - sendOffsetsToTransaction with a consumer group's metadata (a real generation and member id): the
      offsets are committed with the transaction, not with an aborted one (the records processed again after
      the abort are output once), and offsets sent with a generation the group never had are refused
      (CommitFailedException), leaving the committed offsets as they were.
    """
    bootstrap = broker.bootstrap
    create_topic(bootstrap, f"{PREFIX}-a", 3)
    create_topic(bootstrap, f"{PREFIX}-f", 2)
    create_topic(bootstrap, f"{PREFIX}-in", 2)
    create_topic(bootstrap, f"{PREFIX}-out", 2)
    plain = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(10):
        plain.produce(f"{PREFIX}-in", value=f"in-{i}".encode(), partition=i % 2)
    assert plain.flush(30) == 0

    java = JavaProcess(java_driver, "txn", bootstrap, PREFIX)
    events = java.wait(240)
    steps: dict[str, list[dict]] = {}
    for e in events:
        steps.setdefault(e["event"], []).append(e)
    assert "done" in steps, java.describe()
    reads = {e["topic"]: e["records"] for e in steps["read_committed"]}

    # commit, abort, open
    committed = [f"committed-{i}" for i in range(9)]
    aborted = [f"aborted-{i}" for i in range(6)]
    opened = [f"open-{i}" for i in range(3)]
    assert steps["committed"][0]["values"] == committed and steps["aborted"][0]["values"] == aborted
    while_open = steps["while_open"][0]
    assert sorted(while_open["read"]) == sorted(committed), while_open
    lso, high = while_open["lso"], while_open["high"]
    for p in ("0", "1", "2"):
        # 3 committed records + marker, 2 aborted + marker, then the open record (the LSO is its offset)
        assert lso[p] == 7 and high[p] == 8, while_open
    assert sorted(steps["after_commit"][0]["read"]) == sorted(opened)
    final = reads[f"{PREFIX}-a"]
    assert sorted(r["value"] for r in final) == sorted(committed + opened)
    for p in range(3):
        offsets = [r["offset"] for r in final if r["partition"] == p]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    in_log = read_all(bootstrap, f"{PREFIX}-a", 3, "read_uncommitted")
    assert sorted(in_log) == sorted(committed + aborted + opened)
    assert sorted(read_all(bootstrap, f"{PREFIX}-a", 3, "read_committed")) == sorted(committed + opened)

    # fencing
    assert steps["fenced"][0]["commit_error"] == "ProducerFencedException", steps["fenced"]
    assert sorted(r["value"] for r in reads[f"{PREFIX}-f"]) == ["successor-0", "successor-1"]
    assert sorted(read_all(bootstrap, f"{PREFIX}-f", 2, "read_uncommitted")) == [
        "successor-0", "successor-1", "zombie-0", "zombie-1"]

    # sendOffsetsToTransaction
    by_step = {e["step"]: e for e in steps["offsets"]}
    assert by_step["commit"]["committed"] == {"0": 5, "1": 5} and by_step["commit"]["read"] == 10
    assert by_step["abort"]["committed"] == {"0": 5, "1": 5}, "offsets of an aborted transaction were committed"
    assert by_step["retry"]["committed"] == {"0": 8, "1": 8} and by_step["retry"]["read"] == 6
    assert by_step["commit"]["generation"] >= 1 and by_step["commit"]["member_id"]
    stale = steps["stale_generation"][0]
    assert stale["error"] == "CommitFailedException" and stale["committed"] == {"0": 8, "1": 8}, stale
    outputs = sorted(r["value"] for r in reads[f"{PREFIX}-out"])
    assert outputs == sorted(f"out-in-{i}" for i in range(16)), "each input's output exactly once"
    assert sorted(read_all(bootstrap, f"{PREFIX}-out", 2, "read_committed")) == outputs
    admin = AdminClient({"bootstrap.servers": bootstrap})
    group = f"{PREFIX}-group"
    listed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(10)
    assert {tp.partition: tp.offset for tp in listed.topic_partitions} == {0: 8, 1: 8}
