"""What the transaction interop tests read back with librdkafka, to cross-check another client's transactions."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, TopicPartition


def read_values(bootstrap: str, topic: str, partitions: int, isolation: str, group: str) -> list[str]:
    """Every data record from the start up to the end (the high watermark, or the last stable offset under
    isolation "read_committed"), as text."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "isolation.level": isolation, "fetch.wait.max.ms": 100})
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps]
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        values: list[str] = []
        deadline = time.monotonic() + 30
        while [tp.offset for tp in consumer.position(tps)] != ends and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                values.append(msg.value().decode())
        assert [tp.offset for tp in consumer.position(tps)] == ends, f"{topic}: did not reach {ends}"
        return values
    finally:
        consumer.close()
