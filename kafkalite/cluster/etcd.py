"""The MetadataStore on etcd, through aetcd (the `kafkalite[cluster]` extra): the only module that imports it.

- Endpoints rotate: a call that cannot reach its member moves to the next one and tries again; a member that
  stalls otherwise lets a lease expire while the others are fine.
- Transactions are never retried blindly: one whose answer was lost may have been applied, so the adapter
  raises StoreUnavailable and the caller re-reads before it decides again (its compares make a repeat safe).
- Watches resume from the last revision they delivered when their stream breaks.
- Lease TTLs are whole seconds in etcd; a TTL in milliseconds rounds up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator, Sequence

import aetcd
import aetcd.rpc as rpc
import aetcd.utils
import grpc

from kafkalite.cluster.store import (
    Compare, Event, KeyValue, LeaseExpired, Op, Put, StoreUnavailable, TxnResult,
)

log = logging.getLogger("kafkalite.etcd")

_UNREACHABLE = (aetcd.ConnectionFailedError, aetcd.ConnectionTimeoutError, aetcd.InternalError, OSError,
                asyncio.TimeoutError, grpc.RpcError)


def _never_sent(error: BaseException) -> bool:
    """The request cannot have reached etcd (no connection), so even a transaction may go to another member."""
    if isinstance(error, aetcd.ConnectionFailedError):
        return True
    return isinstance(error, grpc.aio.AioRpcError) and error.code() == grpc.StatusCode.UNAVAILABLE


def parse_endpoints(spec: str) -> tuple[list[tuple[str, int]], str]:
    """`etcd://HOST:PORT[,HOST:PORT...]/NAME` -> ([(host, port), ...], NAME)."""
    if not spec.startswith("etcd://"):
        raise ValueError(f"{spec!r} is not etcd://HOST:PORT[,HOST:PORT...]/NAME")
    hosts, sep, name = spec[len("etcd://"):].partition("/")
    if not sep or not name or "/" in name:
        raise ValueError(f"{spec!r} names no cluster: etcd://HOST:PORT[,HOST:PORT...]/NAME")
    endpoints = []
    for item in hosts.split(","):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{item!r} in {spec!r} is not HOST:PORT")
        endpoints.append((host, int(port)))
    return endpoints, name


class EtcdStore:
    def __init__(self, endpoints: list[tuple[str, int]], timeout_s: float = 2.0):
        if not endpoints:
            raise ValueError("no etcd endpoints")
        self.endpoints = endpoints
        self.timeout_s = timeout_s
        self._current = 0
        self._client: aetcd.Client | None = None
        self._connecting = asyncio.Lock()

    # ------------------------------------------------------------------ connections

    async def _connected(self) -> aetcd.Client:
        if self._client is None:
            async with self._connecting:  # the keep-alive, the watch and writes share one client
                if self._client is None:
                    host, port = self.endpoints[self._current]
                    client = aetcd.Client(host=host, port=port, timeout=self.timeout_s, connect_wait_timeout=1)
                    await client.connect()
                    self._client = client
        return self._client

    async def _rotate(self, failed: aetcd.Client | None) -> None:
        """Drop the client that failed (if another call has not already) and move to the next member."""
        if failed is None or failed is not self._client:
            return
        self._client = None
        self._current = (self._current + 1) % len(self.endpoints)
        try:
            # Bounded: closing a channel whose packets are being dropped can hang, and the keep-alive waits here.
            await asyncio.wait_for(failed.close(), self.timeout_s)
        except Exception:  # noqa: BLE001 - a broken channel may not close cleanly; it is dropped either way
            pass

    async def _call(self, fn, *, idempotent: bool = True):
        """Run `fn(client)`; on an unreachable member rotate to the next, trying each member once. A call that
        is not idempotent (a transaction) goes to the next member only if it cannot have been sent."""
        last: BaseException | None = None
        for _ in range(len(self.endpoints)):
            used = self._client
            try:
                # A local deadline on the whole attempt, connecting included: a call that hangs (seen on a channel
                # to an etcd that just restarted) would stall the lease keep-alive until the lease is gone.
                return await asyncio.wait_for(self._attempt(fn), self.timeout_s * 2)
            except _UNREACHABLE as e:
                last = e
                log.warning("etcd %s:%d unreachable: %s", *self.endpoints[self._current], e)
                await self._rotate(used or self._client)
                if not idempotent and not _never_sent(e):
                    break
        raise StoreUnavailable(f"no etcd member answered: {last}")

    async def _attempt(self, fn):
        return await fn(await self._connected())

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    # ------------------------------------------------------------------ reads

    async def get(self, key: str) -> KeyValue | None:
        got = await self._call(lambda c: c.get(key.encode()))
        return None if got is None else _kv(got)

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        got = await self._call(lambda c: c.get_prefix(prefix.encode(), sort_target="key"))
        return [_kv(kv) for kv in got], got.header.revision

    # ------------------------------------------------------------------ writes

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()) -> TxnResult:
        async def run(client: aetcd.Client) -> TxnResult:
            request = rpc.TxnRequest(
                compare=[_compare(client, c).build_message() for c in compares],
                success=client._ops_to_requests([_op(client, op) for op in success]),
                failure=client._ops_to_requests([_op(client, op) for op in failure]),
            )
            response = await client.kvstub.Txn(request, timeout=self.timeout_s, metadata=client.metadata)
            return TxnResult(response.succeeded, response.header.revision)

        try:
            return await self._call(run, idempotent=False)  # never blindly: it may have been applied
        except aetcd.ClientError as e:
            _raise_if_lease_gone(e)
            raise

    # ------------------------------------------------------------------ leases

    async def grant_lease(self, ttl_ms: int) -> int:
        lease = await self._call(lambda c: c.lease(max(1, -(-ttl_ms // 1000))))
        return lease.id

    async def keep_alive(self, lease: int) -> None:
        try:
            reply = await self._call(lambda c: c.refresh_lease(lease))
        except aetcd.ClientError as e:
            _raise_if_lease_gone(e)
            raise
        if reply is None or reply.TTL <= 0:
            raise LeaseExpired(f"lease {lease:x} is gone")

    async def revoke_lease(self, lease: int) -> None:
        try:
            await self._call(lambda c: c.revoke_lease(lease))
        except aetcd.ClientError as e:
            _raise_if_lease_gone(e)
            raise

    # ------------------------------------------------------------------ watches

    async def watch_prefix(self, prefix: str, start_revision: int) -> AsyncIterator[Event]:
        next_revision = start_revision
        while True:
            try:
                watch = await self._call(lambda c: c.watch_prefix(prefix.encode(), start_revision=next_revision))
                try:
                    async for event in watch:
                        kv = event.kv
                        yield Event("put" if event.kind == "PUT" else "delete", kv.key.decode(),
                                    kv.value if event.kind == "PUT" else b"", kv.mod_revision, kv.create_revision)
                        next_revision = kv.mod_revision + 1
                finally:
                    try:
                        await asyncio.wait_for(watch.cancel(), self.timeout_s)
                    except Exception:  # noqa: BLE001 - a stream on a broken channel may not cancel cleanly
                        pass
            except (StoreUnavailable, aetcd.WatchTimeoutError, *_UNREACHABLE) as e:
                # (WatchTimeoutError: etcd took the connection but did not create the watch in time, as while it
                # restarts; the watch task must never end, or this broker's metadata freezes.)
                log.warning("etcd watch of %s broke at revision %d: %r; resuming", prefix, next_revision, e)
                await self._rotate(self._client)
                await asyncio.sleep(0.2)  # back off before the next member (a retry pace, not a wait for an event)


def _raise_if_lease_gone(error: aetcd.ClientError) -> None:
    """etcd's "requested lease not found" is the store's LeaseExpired, whichever call met it."""
    if "lease not found" in str(error):
        raise LeaseExpired(str(error)) from None


def _kv(kv) -> KeyValue:
    return KeyValue(kv.key.decode(), kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)


def _compare(client: aetcd.Client, c: Compare):
    tx = client.transactions
    target = {"create": tx.create, "mod": tx.mod, "version": tx.version, "value": tx.value}[c.target](c.key.encode())
    return {"==": target.__eq__, "!=": target.__ne__, "<": target.__lt__, ">": target.__gt__}[c.op](c.value)


def _op(client: aetcd.Client, op: Op):
    tx = client.transactions
    if isinstance(op, Put):
        return tx.put(op.key.encode(), op.value, lease=op.lease or None)
    key = op.key.encode()
    return tx.delete(key, range_end=aetcd.utils.prefix_range_end(key) if op.prefix else None)
