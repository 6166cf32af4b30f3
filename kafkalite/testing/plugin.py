"""The pytest plugin (registered as `kafkalite` by the `pytest11` entry point): kafkalite brokers as fixtures.

    def test_roundtrip(kafka_broker):                      # a fresh broker for this test
        producer = confluent_kafka.Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})

    @pytest.mark.kafkalite(num_partitions=3)                # settings for this test's kafka_broker
    def test_three(kafka_broker): ...

    def test_shared(kafka_broker_session): ...              # one broker for the whole session

    def test_two(kafka_broker_factory):                    # several brokers, each with its own settings
        small = kafka_broker_factory(message_max_bytes=1000)
        big = kafka_broker_factory(num_partitions=8)

Each fixture yields a started kafkalite.testing.EmbeddedBroker; its temporary data dir is removed afterwards.
"""

from __future__ import annotations

import pytest

from kafkalite.testing import EmbeddedBroker


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "kafkalite(**settings): broker settings for the kafka_broker fixture (num_partitions=3)")


@pytest.fixture
def kafka_broker(request):
    """A fresh kafkalite broker for one test, with the settings of its @pytest.mark.kafkalite(...) if any."""
    marker = request.node.get_closest_marker("kafkalite")
    settings = dict(marker.kwargs) if marker else {}
    with EmbeddedBroker(**settings) as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_broker_session():
    """One kafkalite broker shared by every test of the session: cheaper, but tests see each other's topics."""
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture
def kafka_broker_factory():
    """Starts a broker per call, `kafka_broker_factory(**settings)`; all of them are closed after the test."""
    brokers: list[EmbeddedBroker] = []

    def start(data_dir: str | None = None, **settings) -> EmbeddedBroker:
        broker = EmbeddedBroker(data_dir, **settings)
        brokers.append(broker)
        return broker.start()

    yield start
    for broker in reversed(brokers):
        broker.close()
