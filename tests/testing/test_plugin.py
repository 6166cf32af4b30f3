"""The pytest plugin, as a user's suite meets it: a separate pytest run (pytester, in a subprocess) of a test file
that only names the fixtures. The plugin arrives by its pytest11 entry point, not by anything in this repository."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

USER_TESTS = '''
import asyncio
import confluent_kafka
import pytest
from kafkalite_client import Consumer, Producer, TopicPartition

seen = []


def roundtrip(bootstrap, topic, value):
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "socket.nagle.disable": True})
    producer.produce(topic, value)
    assert producer.flush(10) == 0
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "g",
                                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        for _ in range(100):
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                return message.value()
    finally:
        consumer.close()


def test_confluent_kafka_against_a_fresh_broker(kafka_broker):
    assert roundtrip(kafka_broker.bootstrap_servers, "t", b"hello") == b"hello"


def test_each_test_gets_its_own_broker(kafka_broker):
    import confluent_kafka.admin
    topics = confluent_kafka.admin.AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers}).list_topics(
        timeout=10).topics
    assert "t" not in topics  # the previous test's topic is not here: a broker of its own


@pytest.mark.kafkalite(num_partitions=4)
def test_settings_by_marker(kafka_broker):
    assert kafka_broker.config["num.partitions"] == 4


def test_the_session_broker_is_shared_1(kafka_broker_session):
    seen.append(("session", kafka_broker_session.port))


def test_the_session_broker_is_shared_2(kafka_broker_session):
    assert ("session", kafka_broker_session.port) in seen


def test_a_factory_for_brokers_with_different_settings(kafka_broker_factory):
    small = kafka_broker_factory(message_max_bytes=2000)
    big = kafka_broker_factory(num_partitions=8)
    assert small.port != big.port
    producer = confluent_kafka.Producer({"bootstrap.servers": small.bootstrap_servers})
    errors = []
    producer.produce("t", b"x" * 5000, on_delivery=lambda err, msg: errors.append(err))
    producer.flush(10)
    assert errors and errors[0].code() == confluent_kafka.KafkaError.MSG_SIZE_TOO_LARGE
    assert roundtrip(big.bootstrap_servers, "t", b"fits") == b"fits"


@pytest.mark.asyncio
async def test_the_async_client_against_the_fixture(kafka_broker):
    async with Producer(kafka_broker.bootstrap_servers) as producer:
        await producer.send("a", b"v")
    async with Consumer(bootstrap_servers=kafka_broker.bootstrap_servers, auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition("a", 0)])
        record = await asyncio.wait_for(consumer.getone(), 10)
    assert record.value == b"v"


def test_data_dirs_are_removed(kafka_broker_factory):
    import os
    broker = kafka_broker_factory()
    seen.append(("dir", broker.data_dir))
    assert os.path.isdir(broker.data_dir)


@pytest.mark.kafkalite(no_such_setting=1)
def test_a_misspelt_setting_errors_the_test(kafka_broker):
    pass


def test_data_dirs_are_removed_2():
    import os
    [data_dir] = [d for kind, d in (p for p in seen if isinstance(p, tuple)) if kind == "dir"]
    assert not os.path.exists(data_dir)
'''


def require_confluent_kafka() -> None:
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        from brokerproc import missing

        missing("confluent-kafka is not installed")


def test_the_plugin_in_a_users_suite(pytester):
    require_confluent_kafka()
    pytester.makepyfile(test_user=USER_TESTS)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=240)
    result.assert_outcomes(passed=9, errors=1)
    result.stdout.fnmatch_lines(["ERROR test_user.py::test_a_misspelt_setting_errors_the_test - ValueError: unk*"])
    assert "ValueError: unknown setting 'no.such.setting'" in result.stdout.str()


def test_the_readmes_example_runs(pytester):
    require_confluent_kafka()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## Testing your code against kafkalite\n", 1)[1].split("\n## ", 1)[0]
    [example] = re.findall(r"```python\n(.*?)```", section, re.S)
    pytester.makepyfile(test_orders=example)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=240)
    result.assert_outcomes(passed=example.count("\ndef test_"))


def test_the_plugin_is_registered_by_entry_point():
    # (The pytester runs above prove it works that way: their directories hold no conftest and no -p option.)
    [entry] = [e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "kafkalite"]
    assert entry.value == "kafkalite.testing.plugin"
    assert {"kafka_broker", "kafka_broker_session", "kafka_broker_factory"} <= set(vars(entry.load()))
