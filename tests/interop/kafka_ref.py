"""Apache Kafka as the reference broker in tests: scripts/kafka_reference.py loaded as a module, and fixtures.

Without java or mvn (and no cached jars) the tests that need Kafka skip on a laptop and fail under CI=true.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from brokerproc import BrokerProcess, missing

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kafka_reference.py"


def load_kafka_reference():
    """scripts/kafka_reference.py as the module `kafka_reference` (scripts/ is no package)."""
    if "kafka_reference" not in sys.modules:
        spec = importlib.util.spec_from_file_location("kafka_reference", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["kafka_reference"] = module
        spec.loader.exec_module(module)
    return sys.modules["kafka_reference"]


kafka_reference_module = load_kafka_reference()


def require_kafka() -> str:
    """The directory of Kafka's jars (fetched on first use): skip without them on a laptop, fail in CI."""
    try:
        return kafka_reference_module.ensure_kafka()
    except kafka_reference_module.KafkaUnavailable as exc:
        missing(f"Apache Kafka is unavailable: {exc}")


def run_kafka_tool(name: str, *args: str, input: str | None = None, timeout: float = 60):
    """One of Kafka's command-line tools (skips or fails like require_kafka without the jars)."""
    require_kafka()
    return kafka_reference_module.run_tool(name, list(args), input=input, timeout=timeout)


@pytest.fixture(scope="session")
def kafka_reference(tmp_path_factory):
    """One Apache Kafka broker (KRaft, node id 0) shared by the whole session; tests use their own topics."""
    require_kafka()
    broker = kafka_reference_module.KafkaBroker(str(tmp_path_factory.mktemp("kafka-reference")))
    broker.start()
    yield broker
    broker.stop()


@dataclass
class Target:
    """A broker a test runs the same steps against: kafkalite or the reference Kafka."""

    name: str  # "kafkalite" or "kafka"
    bootstrap: str

    @functools.cached_property
    def admin(self) -> AdminClient:
        # Kept: librdkafka fails the futures of an admin client that is garbage-collected.
        return AdminClient({"bootstrap.servers": self.bootstrap})


def kafkalite_or_kafka(request, tmp_path_factory, label: str):
    """The body of a module fixture parametrized ["kafkalite", "kafka"]: one kafkalite (a `python -m kafkalite`
    process, stopped afterwards) or the session's Apache Kafka. Kafka's jars are needed either way (the tests
    run Kafka's own tools)."""
    require_kafka()
    if request.param == "kafka":
        yield Target("kafka", request.getfixturevalue("kafka_reference").bootstrap)
        return
    proc = BrokerProcess(str(tmp_path_factory.mktemp(label)))
    proc.start()
    yield Target("kafkalite", proc.bootstrap)
    proc.stop()
