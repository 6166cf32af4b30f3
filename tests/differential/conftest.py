"""One Apache Kafka broker and one kafkalite broker per test session; a fresh pair of connections and fresh topic
names per test. Without Java or Maven (so without Kafka) every differential test skips, and fails under CI=true."""

from __future__ import annotations

import itertools
import os
import re
import sys
import time

import pytest

from brokerproc import BrokerProcess, missing
from diff_harness import Pair, Side

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import kafka_reference  # noqa: E402  (scripts/ is not a package)

# Settings both brokers share, where kafkalite's default differs from what the reference Kafka runs with.
KAFKALITE_SETTINGS = {"group.initial.rebalance.delay.ms": "0"}


def node_id_of(side: Side) -> int:
    answer = side.request("Metadata", 1, {"topics": []})
    side.close()
    return answer["brokers"][0]["node_id"]


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    try:
        kafka_reference.ensure_kafka()
    except kafka_reference.KafkaUnavailable as e:
        missing(f"Apache Kafka is not available: {e}")
    broker = kafka_reference.KafkaBroker(str(tmp_path_factory.mktemp("kafka")))
    broker.start()
    try:
        wait_for_coordinators(Side("kafka", broker.port))
        yield broker
    finally:
        broker.stop()


def wait_for_coordinators(side: Side, timeout: float = 60.0) -> None:
    """Kafka answers Metadata before its group, producer-id and transaction coordinators are ready (it creates
    __consumer_offsets and __transaction_state on the first FindCoordinator of each kind): poll each until it
    answers without error."""
    deadline = time.monotonic() + timeout
    probes = [("FindCoordinator", 4, {"key_type": 0, "coordinator_keys": ["diff-warm-up"]},
               lambda a: a["coordinators"][0]["error_code"]),
              ("InitProducerId", 4, {"transactional_id": None, "transaction_timeout_ms": 60000},
               lambda a: a["error_code"]),
              ("FindCoordinator", 4, {"key_type": 1, "coordinator_keys": ["diff-warm-up"]},
               lambda a: a["coordinators"][0]["error_code"]),
              ("InitProducerId", 4, {"transactional_id": "diff-warm-up", "transaction_timeout_ms": 60000,
                                     "producer_id": -1, "producer_epoch": -1}, lambda a: a["error_code"])]
    for api, version, body, error_of in probes:
        while (error := error_of(side.request(api, version, body))) != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka's {api} still answers error {error} after {timeout:.0f}s")
            time.sleep(0.2)  # no event to wait on: Kafka loads coordinators in the background
    side.close()


@pytest.fixture(scope="session")
def kafkalite(tmp_path_factory, kafka):
    settings = [arg for name, value in KAFKALITE_SETTINGS.items() for arg in ("--set", f"{name}={value}")]
    # The reference Kafka's node id, so that node ids compare equal without normalizing each field a version
    # leaves out (which decodes as 0).
    broker = BrokerProcess(str(tmp_path_factory.mktemp("kafkalite")), "--node-id", str(kafka.node_id), *settings)
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture(scope="session")
def node_ids(kafka, kafkalite) -> dict[str, int]:
    return {"kafka": node_id_of(Side("kafka", kafka.port)), "kafkalite": node_id_of(Side("kafkalite", kafkalite.port))}


@pytest.fixture
def pair(kafka, kafkalite, node_ids):
    both = Pair(Side("kafka", kafka.port, node_id=node_ids["kafka"]),
                Side("kafkalite", kafkalite.port, node_id=node_ids["kafkalite"]))
    yield both
    both.close()


_serial = itertools.count()


@pytest.fixture
def names(request):
    """Fresh topic (or group) names for this test: names("t") -> "diff-<test>-t-<n>", the same on both brokers."""
    test = re.sub(r"[^a-zA-Z0-9._-]", "_", request.node.name)[:80]
    return lambda what="t": f"diff-{test}-{what}-{next(_serial)}"
