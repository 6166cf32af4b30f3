"""Producer ids for idempotent producers: never handed out twice, across restarts and power cuts too.

Ids come from blocks reserved on disk (producer_ids.json holds the start of the next block); a block is reserved
atomically, directory fsync included, in a worker thread, before any id of it is handed out.
"""

from __future__ import annotations

import asyncio
import json
import os

from kafkalite.log.fs import FileSystem

BLOCK_SIZE = 1000
FILE_NAME = "producer_ids.json"


class ProducerIdBlocks:
    def __init__(self, data_dir: str, fs: FileSystem | None = None):
        self.path = os.path.join(data_dir, FILE_NAME)
        self.fs = fs or FileSystem()
        self._next = 0
        self._limit = 0
        self._reserving = asyncio.Lock()

    async def allocate(self) -> int:
        """A fresh producer id (raises OSError if a new block cannot be reserved)."""
        if self._next >= self._limit:
            async with self._reserving:
                if self._next >= self._limit:
                    self._next, self._limit = await asyncio.to_thread(self._reserve_block)
        pid = self._next
        self._next += 1
        return pid

    def _reserve_block(self) -> tuple[int, int]:
        start = 0
        if self.fs.exists(self.path):
            start = json.loads(self.fs.read_file(self.path))["next_block"]
        self.fs.write_file_atomic(self.path, json.dumps({"next_block": start + BLOCK_SIZE}).encode())
        return start, start + BLOCK_SIZE
