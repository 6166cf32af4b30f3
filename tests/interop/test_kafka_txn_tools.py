"""Kafka's own kafka-transactions.sh (`list`, `describe`, `describe-producers`) against a live kafkalite, with one
confluent-kafka transaction left open and one committed; the same invocations and expectations run against Apache
Kafka itself, so a difference between the two shows as a failure on one side. (confluent-kafka's AdminClient has
no transaction admin calls to check them with.)"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from kafka_ref import Target, kafkalite_or_kafka, run_kafka_tool

pytestmark = pytest.mark.interop

TXN_TIMEOUT_MS = 120_000
OPEN_PARTITION, COMMITTED_PARTITION = 0, 1


@pytest.fixture(scope="module", params=["kafkalite", "kafka"])
def broker(request, tmp_path_factory):
    """One kafkalite and one Apache Kafka for the whole module."""
    yield from kafkalite_or_kafka(request, tmp_path_factory, "kafkalite-txn-tools")


@dataclass
class Transactions:
    topic: str
    open_id: str  # its transaction is left open, with records in OPEN_PARTITION
    committed_id: str  # committed one transaction of a record in COMMITTED_PARTITION


def transactional_producer(target: Target, transactional_id: str) -> Producer:
    producer = Producer({"bootstrap.servers": target.bootstrap, "transactional.id": transactional_id,
                         "transaction.timeout.ms": TXN_TIMEOUT_MS})
    producer.init_transactions(60)
    producer.begin_transaction()
    return producer


@pytest.fixture(scope="module")
def transactions(broker):
    # The Kafka reference is shared by the session: names of our own so other tests' transactions do not matter.
    suffix = uuid.uuid4().hex[:8]
    txns = Transactions(f"txn-tools-{suffix}", f"open-{suffix}", f"committed-{suffix}")
    broker.admin.create_topics([NewTopic(txns.topic, 2, 1)])[txns.topic].result(30)
    committed = transactional_producer(broker, txns.committed_id)
    committed.produce(txns.topic, b"done", partition=COMMITTED_PARTITION)
    committed.commit_transaction(60)
    still_open = transactional_producer(broker, txns.open_id)
    still_open.produce(txns.topic, b"pending-1", partition=OPEN_PARTITION)
    still_open.produce(txns.topic, b"pending-2", partition=OPEN_PARTITION)
    assert still_open.flush(60) == 0  # sent: the partition is in the transaction and the records in the log
    yield txns
    still_open.abort_transaction(60)


def transactions_tool(target: Target, *args: str) -> str:
    """A kafka-transactions.sh run that must succeed; its stdout."""
    done = run_kafka_tool("kafka-transactions", "--bootstrap-server", target.bootstrap, *args)
    assert done.returncode == 0, f"kafka-transactions {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n" \
                                 f"{done.stderr}"
    return done.stdout


def table(output: str) -> list[dict[str, str]]:
    """The tool's tab-separated, space-padded table as one dict per row."""
    header, *rows = [line.split("\t") for line in output.splitlines() if line.strip()]
    names = [name.strip() for name in header]
    return [dict(zip(names, (cell.strip() for cell in row))) for row in rows]


def describe(target: Target, transactional_id: str) -> dict[str, str]:
    [row] = table(transactions_tool(target, "describe", "--transactional-id", transactional_id))
    return row


def test_list_shows_the_open_and_the_committed_transaction(broker, transactions):
    rows = {row["TransactionalId"]: row for row in table(transactions_tool(broker, "list"))}
    assert rows[transactions.open_id]["TransactionState"] == "Ongoing"
    assert rows[transactions.committed_id]["TransactionState"] == "CompleteCommit"
    for txn_id in (transactions.open_id, transactions.committed_id):
        assert rows[txn_id]["ProducerId"] == describe(broker, txn_id)["ProducerId"]
    assert rows[transactions.open_id]["ProducerId"] != rows[transactions.committed_id]["ProducerId"]


def test_list_filters_by_pattern_and_duration(broker, transactions):
    def listed(*args: str) -> set[str]:
        return {row["TransactionalId"] for row in table(transactions_tool(broker, "list", *args))}

    prefix = transactions.open_id[:-2]  # "open-" and most of this module's own suffix
    assert listed("--transactional-id-pattern", f"{prefix}.*") == {transactions.open_id}
    assert listed("--transactional-id-pattern", prefix) == set()  # the whole id must match
    ours = {transactions.open_id, transactions.committed_id}
    assert not ours & listed("--duration-filter", "3600000")  # neither started an hour ago


def test_describe_the_open_transaction(broker, transactions):
    row = describe(broker, transactions.open_id)
    assert row["TransactionState"] == "Ongoing"
    assert row["TopicPartitions"] == f"{transactions.topic}-{OPEN_PARTITION}"
    assert (row["ProducerEpoch"], row["TransactionTimeoutMs"]) == ("0", str(TXN_TIMEOUT_MS))
    assert int(row["CurrentTransactionStartTimeMs"]) > 0 and int(row["TransactionDurationMs"]) >= 0


def test_describe_the_committed_transaction(broker, transactions):
    row = describe(broker, transactions.committed_id)
    assert (row["TransactionState"], row["TopicPartitions"]) == ("CompleteCommit", "")


def test_describe_an_unknown_transactional_id_fails(broker, transactions):
    done = run_kafka_tool("kafka-transactions", "--bootstrap-server", broker.bootstrap, "describe",
                          "--transactional-id", f"never-{transactions.open_id}")
    assert done.returncode != 0
    assert "could not be found" in done.stdout + done.stderr


def test_describe_producers_of_the_open_and_the_committed_partition(broker, transactions):
    open_pid = describe(broker, transactions.open_id)["ProducerId"]
    committed_pid = describe(broker, transactions.committed_id)["ProducerId"]
    [pending] = table(transactions_tool(broker, "describe-producers", "--topic", transactions.topic,
                                        "--partition", str(OPEN_PARTITION)))
    assert (pending["ProducerId"], pending["ProducerEpoch"], pending["LastSequence"]) == (open_pid, "0", "1")
    assert pending["CurrentTransactionStartOffset"] == "0"  # the first of its two records
    assert pending["LatestCoordinatorEpoch"] == "-1"  # no marker yet
    assert int(pending["LastTimestamp"]) > 0
    [done] = table(transactions_tool(broker, "describe-producers", "--topic", transactions.topic,
                                     "--partition", str(COMMITTED_PARTITION)))
    assert (done["ProducerId"], done["LastSequence"]) == (committed_pid, "0")
    assert done["CurrentTransactionStartOffset"] == "None"  # its transaction ended with the COMMIT marker
    assert done["LatestCoordinatorEpoch"] == "0"  # the epoch its COMMIT marker carried
