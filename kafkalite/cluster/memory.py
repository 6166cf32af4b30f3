"""An in-memory MetadataStore with etcd's semantics, for unit tests: revisions, transactions, leases that expire
on an injected clock, watches that resume from a revision. Several brokers of a test share one instance.

`unavailable = True` makes every call raise StoreUnavailable, as a store without quorum would (keys already on
a lease keep it: an etcd that is down expires nothing until it is back).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import AsyncIterator, Sequence

from kafkalite.clock import Clock
from kafkalite.cluster.store import (
    Compare, Delete, Event, KeyValue, LeaseExpired, Op, Put, StoreUnavailable, TxnResult, compare_holds,
)


@dataclass(slots=True)
class _Lease:
    ttl_ms: int
    deadline_ms: int
    keys: set[str] = field(default_factory=set)
    timer: object = None


class MemoryStore:
    def __init__(self, clock: Clock):
        self.clock = clock
        self.revision = 1  # etcd starts at 1
        self.unavailable = False
        self._keys: dict[str, KeyValue] = {}
        self._leases: dict[int, _Lease] = {}
        self._lease_ids = itertools.count(0x1000)
        self._history: list[Event] = []
        self._watchers: list[tuple[str, asyncio.Queue]] = []

    # ------------------------------------------------------------------ reads

    async def get(self, key: str) -> KeyValue | None:
        self._check()
        return self._keys.get(key)

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        self._check()
        return [kv for k, kv in sorted(self._keys.items()) if k.startswith(prefix)], self.revision

    # ------------------------------------------------------------------ writes

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()) -> TxnResult:
        self._check()
        ok = all(compare_holds(self._keys.get(c.key), c) for c in compares)
        ops = success if ok else failure
        for op in ops:
            if isinstance(op, Put) and op.lease and op.lease not in self._leases:
                raise LeaseExpired(f"lease {op.lease:x} is gone")
        if any(self._changes(op) for op in ops):
            self.revision += 1
            events = []
            for op in ops:
                events.extend(self._apply(op))
            self._publish(events)
        return TxnResult(ok, self.revision)

    def _changes(self, op: Op) -> bool:
        if isinstance(op, Put):
            return True
        return any(self._matches(op, k) for k in self._keys)

    @staticmethod
    def _matches(op: Delete, key: str) -> bool:
        return key.startswith(op.key) if op.prefix else key == op.key

    def _apply(self, op: Op) -> list[Event]:
        rev = self.revision
        if isinstance(op, Put):
            old = self._keys.get(op.key)
            if old is not None and old.lease and old.lease != op.lease and old.lease in self._leases:
                self._leases[old.lease].keys.discard(op.key)
            kv = KeyValue(op.key, op.value, old.create_revision if old else rev, rev,
                          old.version + 1 if old else 1, op.lease)
            self._keys[op.key] = kv
            if op.lease:
                self._leases[op.lease].keys.add(op.key)
            return [Event("put", op.key, op.value, rev, kv.create_revision)]
        events = []
        for key in [k for k in self._keys if self._matches(op, k)]:
            kv = self._keys.pop(key)
            if kv.lease in self._leases:
                self._leases[kv.lease].keys.discard(key)
            events.append(Event("delete", key, b"", rev))
        return events

    # ------------------------------------------------------------------ leases

    async def grant_lease(self, ttl_ms: int) -> int:
        self._check()
        lease_id = next(self._lease_ids)
        lease = self._leases[lease_id] = _Lease(ttl_ms, self.clock.now_ms() + ttl_ms)
        lease.timer = self.clock.call_later(ttl_ms, lambda: self._maybe_expire(lease_id))
        return lease_id

    async def keep_alive(self, lease: int) -> None:
        self._check()
        held = self._leases.get(lease)
        if held is None:
            raise LeaseExpired(f"lease {lease:x} is gone")
        held.deadline_ms = self.clock.now_ms() + held.ttl_ms
        held.timer.cancel()
        held.timer = self.clock.call_later(held.ttl_ms, lambda: self._maybe_expire(lease))

    async def revoke_lease(self, lease: int) -> None:
        self._check()
        self._expire(lease)

    def _maybe_expire(self, lease_id: int) -> None:
        lease = self._leases.get(lease_id)
        if lease is None or self.unavailable:  # a store without quorum expires nothing
            if lease is not None:
                lease.timer = self.clock.call_later(lease.ttl_ms, lambda: self._maybe_expire(lease_id))
            return
        if self.clock.now_ms() >= lease.deadline_ms:
            self._expire(lease_id)

    def _expire(self, lease_id: int) -> None:
        lease = self._leases.pop(lease_id, None)
        if lease is None:
            return
        if lease.timer is not None:
            lease.timer.cancel()
        if lease.keys:
            self.revision += 1
            events = []
            for key in sorted(lease.keys):
                if key in self._keys:
                    del self._keys[key]
                    events.append(Event("delete", key, b"", self.revision))
            self._publish(events)

    def lease_alive(self, lease: int) -> bool:
        return lease in self._leases

    # ------------------------------------------------------------------ watches

    async def watch_prefix(self, prefix: str, start_revision: int) -> AsyncIterator[Event]:
        self._check()
        queue: asyncio.Queue = asyncio.Queue()
        for event in self._history:
            if event.revision >= start_revision and event.key.startswith(prefix):
                queue.put_nowait(event)
        entry = (prefix, queue)
        self._watchers.append(entry)
        try:
            while True:
                yield await queue.get()
        finally:
            self._watchers.remove(entry)

    def _publish(self, events: list[Event]) -> None:
        self._history.extend(events)
        for prefix, queue in self._watchers:
            for event in events:
                if event.key.startswith(prefix):
                    queue.put_nowait(event)

    async def close(self) -> None:
        pass

    def _check(self) -> None:
        if self.unavailable:
            raise StoreUnavailable("the metadata store has no quorum")
