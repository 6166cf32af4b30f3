"""What the group service needs from the rest of the broker: the `__consumer_offsets` log, as a port.

The broker (standalone: its local logs; cluster mode: the partitions this broker leads) implements it; tests
give an in-memory one.
"""

from __future__ import annotations

from typing import Protocol


class OffsetsLog(Protocol):
    def partition_count(self) -> int | None:
        """Partitions of __consumer_offsets; None when the topic does not exist."""
        ...

    def read_partition(self, partition: int) -> list[tuple[bytes | None, bytes | None]]:
        """Every (key, value) of one partition's data batches, in log order. Blocking: called in a thread."""
        ...

    async def append(self, partition: int, batch: bytes) -> int:
        """Append a batch the service built, wait until it is durable, return its base offset. Raises on failure."""
        ...
