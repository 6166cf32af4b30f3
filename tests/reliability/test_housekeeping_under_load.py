"""Housekeeping in its worker thread while an idempotent producer pipelines into the same partition.

The broker runs retention, compaction and a checkpoint every 20 ms, so nearly every Produce meets a partition
that housekeeping holds; the writers wait at its turnstile. librdkafka keeps up to 5 idempotent requests in
flight: if any passed another, the broker would answer OUT_OF_ORDER_SEQUENCE and records would be missing or
reordered.
"""

from __future__ import annotations

import os
import struct
import time

import pytest

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from brokerproc import BrokerProcess

pytestmark = pytest.mark.interop

MESSAGES = 3000
CHECKPOINT = struct.Struct(">4sHHqqqqq")  # docs/storage.md: partition.checkpoint


def recovery_point(data, partition_dir: str) -> int:
    try:
        with open(os.path.join(data, partition_dir, "partition.checkpoint"), "rb") as f:
            return CHECKPOINT.unpack(f.read(CHECKPOINT.size))[4]
    except FileNotFoundError:  # a new partition has none until its first checkpoint
        return 0


@pytest.mark.timeout(120)
def test_idempotent_pipelined_produce_keeps_order_while_housekeeping_runs(tmp_path):
    data = tmp_path / "data"
    broker = BrokerProcess(str(data), "--set", "log.retention.check.interval.ms=20",
                           "--set", "offsets.topic.num.partitions=1").start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        configs = {"cleanup.policy": "compact", "segment.bytes": "4096"}
        admin.create_topics([NewTopic("busy", 1, 1, config=configs)])["busy"].result(30)

        errors, acked = [], []

        def delivered(err, msg):
            if err is not None:
                errors.append(err)
            else:
                acked.append((msg.offset(), msg.value()))

        producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "acks": "all",
                             "linger.ms": 0, "max.in.flight.requests.per.connection": 5})

        def produce(numbers):
            # Small bursts with pauses: many Produce requests, several in flight, spread over many rounds.
            for i in numbers:
                producer.produce("busy", key=b"k%d" % i, value=b"v%d" % i, on_delivery=delivered)
                if i % 20 == 19:
                    producer.poll(0.01)

        produce(range(MESSAGES // 2))
        deadline = time.monotonic() + 20
        while recovery_point(data, "busy-0") == 0 and time.monotonic() < deadline:
            producer.poll(0.05)
        assert recovery_point(data, "busy-0") > 0, "housekeeping never checkpointed the partition"
        produce(range(MESSAGES // 2, MESSAGES))
        assert producer.flush(60) == 0
        assert errors == []
        assert [v for _, v in sorted(acked)] == [b"v%d" % i for i in range(MESSAGES)], "acknowledged out of order"

        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused",
                             "enable.auto.commit": False})
        consumer.assign([TopicPartition("busy", 0, 0)])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < MESSAGES and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None:
                assert msg.error() is None, msg.error()
                got.append(msg.value())
        consumer.close()
        assert got == [b"v%d" % i for i in range(MESSAGES)], "stored out of order or incomplete"
        segments = [n for n in os.listdir(os.path.join(data, "busy-0")) if n.endswith(".log")]
        assert len(segments) > 3, "the test meant to make housekeeping work on many segments"
    finally:
        broker.stop()
