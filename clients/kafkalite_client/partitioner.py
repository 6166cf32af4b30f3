"""Choosing a partition: keys by the Java client's murmur2 (so keys land where Java, librdkafka's
`murmur2_random` and kafkajs's default partitioner put them), keyless records stick to one partition
until its batch is sent (KIP-480), so batches fill up instead of spreading thin."""

from __future__ import annotations

import random

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2) as a signed 32-bit int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    tail = length & ~3
    mv = memoryview(data)
    for i in range(0, tail, 4):
        k = mv[i] | (mv[i + 1] << 8) | (mv[i + 2] << 16) | (mv[i + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest == 3:
        h ^= mv[tail + 2] << 16
    if rest >= 2:
        h ^= mv[tail + 1] << 8
    if rest >= 1:
        h ^= mv[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, num_partitions: int) -> int:
    """Java's `Utils.toPositive(Utils.murmur2(key)) % numPartitions`."""
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


class StickyPartitioner:
    """Keyless records go to one partition per topic until `next_batch(topic)` is called (the producer
    calls it when that partition's batch is closed)."""

    def __init__(self, rng: random.Random | None = None):
        self._current: dict[str, int] = {}
        self._rng = rng or random.Random()

    def partition(self, topic: str, key: bytes | None, num_partitions: int, available: list[int]) -> int:
        """Keys hash over all partitions (as in Java); keyless records pick among `available` ones
        (those with a leader), or all of them when none is."""
        if key is not None:
            return partition_for_key(key, num_partitions)
        current = self._current.get(topic)
        if current is None or current >= num_partitions or (available and current not in available):
            current = self._rng.choice(available or range(num_partitions))
            self._current[topic] = current
        return current

    def next_batch(self, topic: str, closed_partition: int) -> None:
        """The sticky partition's batch was closed: pick another partition on the next keyless record."""
        if self._current.get(topic) == closed_partition:
            del self._current[topic]
