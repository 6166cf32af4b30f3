"""kafkalite.testing.EmbeddedBroker: a broker on its own thread, used from a synchronous client on the test's
thread (confluent-kafka) and from an async client on the test's event loop (kafkalite_client)."""

from __future__ import annotations

import os

import pytest

from kafkalite.server import StartupError
from kafkalite.testing import EmbeddedBroker


def confluent():
    try:
        import confluent_kafka
        import confluent_kafka.admin  # noqa: F401
    except ImportError:
        from brokerproc import missing

        missing("confluent-kafka is not installed")
    return confluent_kafka


def produce_and_consume(bootstrap: str, topic: str, values: list[bytes], partitions: int | None = None) -> list:
    ck = confluent()
    if partitions is not None:
        admin = ck.admin.AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([ck.admin.NewTopic(topic, partitions, 1)])[topic].result(10)
    producer = ck.Producer({"bootstrap.servers": bootstrap, "socket.nagle.disable": True})
    for value in values:
        producer.produce(topic, value)
    assert producer.flush(10) == 0
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "g", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got = []
    try:
        for _ in range(200):  # bounded: at most 200 polls of 0.1 s
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                got.append(message.value())
            if len(got) == len(values):
                break
    finally:
        consumer.close()
    return got


def test_a_synchronous_client_on_the_test_thread_with_settings_as_keywords():
    with EmbeddedBroker(num_partitions=3) as broker:
        host, port = broker.bootstrap_servers.split(":")
        assert host == "127.0.0.1" and int(port) > 0
        data_dir = broker.data_dir
        assert os.path.isdir(data_dir) and broker.config["num.partitions"] == 3
        assert sorted(produce_and_consume(broker.bootstrap_servers, "auto", [b"a", b"b", b"c"])) == [b"a", b"b", b"c"]
        metadata = confluent().admin.AdminClient({"bootstrap.servers": broker.bootstrap_servers}).list_topics(
            "auto", timeout=10)
        assert len(metadata.topics["auto"].partitions) == 3  # auto-created with num.partitions=3
    assert not os.path.exists(data_dir)  # the temporary data dir is gone


async def test_an_async_client_on_the_test_event_loop():
    from kafkalite_client import Consumer, Producer, TopicPartition

    async with EmbeddedBroker() as broker:
        async with Producer(broker.bootstrap_servers) as producer:
            sent = [await producer.send("t", b"v%d" % i) for i in range(5)]
        assert [m.offset for m in sent] == [0, 1, 2, 3, 4]
        async with Consumer(bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest") as consumer:
            consumer.assign([TopicPartition("t", 0)])
            got = []
            for _ in range(50):
                batches = await consumer.getmany(timeout_ms=200)
                got += [r.value for records in batches.values() for r in records]
                if len(got) == 5:
                    break
        assert got == [b"v%d" % i for i in range(5)]
    assert not broker.running


def test_a_given_data_dir_is_kept_and_a_restart_keeps_data_and_port(tmp_path):
    data = tmp_path / "data"
    broker = EmbeddedBroker(str(data))
    with broker:
        assert produce_and_consume(broker.bootstrap_servers, "t", [b"one"]) == [b"one"]
        before = broker.bootstrap_servers
        broker.restart()
        assert broker.bootstrap_servers == before
        # A new group reads it again from the start: the record survived the restart.
        ck = confluent()
        consumer = ck.Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "after",
                                "auto.offset.reset": "earliest"})
        consumer.subscribe(["t"])
        try:
            message = None
            for _ in range(100):
                message = consumer.poll(0.1)
                if message is not None and message.error() is None:
                    break
            assert message is not None and message.value() == b"one"
        finally:
            consumer.close()
    assert (data / "t-0").is_dir()  # given, so kept


def test_two_brokers_in_one_process_cannot_share_a_data_dir(tmp_path):
    with EmbeddedBroker(str(tmp_path / "d")):
        second = EmbeddedBroker(str(tmp_path / "d"))
        with pytest.raises(StartupError, match=f"is in use by kafkalite pid {os.getpid()}"):
            second.start()
        assert not second.running


def test_a_misspelt_setting_fails_in_the_test_that_gave_it():
    with pytest.raises(ValueError, match=r"unknown setting 'num.partition'; did you mean num.partitions\?"):
        EmbeddedBroker(num_partition=3)
    with pytest.raises(RuntimeError, match="has not been started"):
        EmbeddedBroker().bootstrap_servers
