"""The metadata store that cluster mode keeps its state in: etcd's data model, as a small interface.

Keys are strings, values bytes; every change gets the next store-wide revision; a key remembers the revision
that created it (create_revision: a broker's epoch, the controller's epoch) and the one that last changed it
(mod_revision: what a compare-and-swap checks). Keys may hang on a lease, and vanish when it expires. Every
write is one transaction: compares, then the writes if they all hold (else the other writes), atomically. A
watch delivers every change after a given revision, in order, so a watcher that reconnects resumes where it
left off. Two implementations: `memory.MemoryStore` for unit tests (time injected) and `etcd.EtcdStore`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator, Literal, Protocol, Sequence


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int = 1  # puts since the key was created
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Event:
    kind: Literal["put", "delete"]
    key: str
    value: bytes  # empty for a delete
    revision: int  # the change's own revision (its mod_revision)
    create_revision: int = 0  # the key's create_revision (0 for a delete)


@dataclass(frozen=True, slots=True)
class Compare:
    """One condition of a transaction: the key's `target` compared with `value`. A missing key has
    create_revision, mod_revision and version 0, and no value."""

    key: str
    target: Literal["create", "mod", "version", "value"]
    op: Literal["==", "!=", "<", ">"]
    value: int | bytes


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: bytes
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Delete:
    key: str
    prefix: bool = False  # every key starting with `key`


Op = Put | Delete


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int  # the store's revision after the transaction


class StoreUnavailable(Exception):
    """The store cannot be reached (or lost quorum): the caller retries later; a write may or may not have
    happened, so a caller never blindly repeats a transaction without its compares."""


class LeaseExpired(Exception):
    """The lease is gone: every key on it is deleted."""


class MetadataStore(Protocol):
    async def get(self, key: str) -> KeyValue | None: ...

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under `prefix`, sorted, and the revision they were read at."""
        ...

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()) -> TxnResult:
        ...

    async def grant_lease(self, ttl_ms: int) -> int: ...

    async def keep_alive(self, lease: int) -> None:
        """Renew the lease to its full TTL; raises LeaseExpired if it is gone."""
        ...

    async def revoke_lease(self, lease: int) -> None: ...

    def watch_prefix(self, prefix: str, start_revision: int) -> AsyncIterator[Event]:
        """Every change under `prefix` from `start_revision` on, in revision order, until the iterator is
        closed."""
        ...

    async def close(self) -> None: ...


def compare_holds(kv: KeyValue | None, compare: Compare) -> bool:
    """Evaluate one Compare against a key as it is now (shared by the in-memory store and tests)."""
    if compare.target == "value":
        if kv is None:
            return False
        actual: int | bytes = kv.value
    elif compare.target == "create":
        actual = kv.create_revision if kv else 0
    elif compare.target == "mod":
        actual = kv.mod_revision if kv else 0
    else:
        actual = kv.version if kv else 0
    return {"==": actual == compare.value, "!=": actual != compare.value,
            "<": actual < compare.value, ">": actual > compare.value}[compare.op]
