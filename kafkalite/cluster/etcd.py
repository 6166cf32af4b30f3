"""The MetadataStore on etcd, through aetcd (the `kafkalite[cluster]` extra): the only module that imports it.

- Endpoints rotate: a call that cannot reach its member moves to the next one and tries again; a member that
  stalls otherwise lets a lease expire while the others are fine.
- Transactions are never retried blindly: one whose answer was lost may have been applied, so the adapter
  raises StoreUnavailable and the caller re-reads before it decides again (its compares make a repeat safe).
- Every call has a local deadline; a lease keep-alive is one short stream, abandoned after its answer.
- Watches resume from the last revision they delivered when their stream breaks; each has a channel of its own.
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


# Reconnect soon after a member is reachable again: gRPC's default backoff grows to 120 s, far past a lease. (The
# minimum is left alone: gRPC also takes it for the connect timeout.) A silent member is found by each call's
# deadline and, for a watch, by `_probed`: gRPC keepalive pings were not seen to notice a frozen member, and etcd
# refuses pings more often than its --grpc-keepalive-min-time (5 s by default).
_CHANNEL_OPTIONS = {
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 1000,
}


class _Channel:
    """A client on one etcd member at a time; a caller whose call failed drops it, and the next caller connects
    to the next member (on a new TCP connection: the old one may sit in retransmission backoff long after the
    network healed)."""

    def __init__(self, endpoints: list[tuple[str, int]], timeout_s: float, first: int = 0):
        self.endpoints = endpoints
        self.timeout_s = timeout_s
        self.current = first % len(endpoints)
        self._client: aetcd.Client | None = None
        self._connecting = asyncio.Lock()
        self._closing: set[asyncio.Task] = set()

    @property
    def endpoint(self) -> tuple[str, int]:
        return self.endpoints[self.current]

    @property
    def client(self) -> aetcd.Client | None:
        return self._client

    async def connected(self) -> aetcd.Client:
        if self._client is None:
            async with self._connecting:
                if self._client is None:
                    host, port = self.endpoint
                    client = aetcd.Client(host=host, port=port, timeout=self.timeout_s, connect_wait_timeout=1,
                                          options=_CHANNEL_OPTIONS)
                    await client.connect()
                    self._client = client
        return self._client

    def rotate(self, failed: aetcd.Client | None) -> None:
        """Drop the client that failed (if another caller has not already) and move to the next member. Its
        channel is closed in the background, never waited for: closing a channel whose packets are dropped can
        hang, and the caller (the lease keep-alive, say) must go on at once. Closing it ends every call still on
        it; those callers see a CancelledError that is not theirs and try again (EtcdStore._call)."""
        if failed is None or failed is not self._client:
            return
        self._client = None
        self.current = (self.current + 1) % len(self.endpoints)
        task = asyncio.get_running_loop().create_task(_close_quietly(failed))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await _close_quietly(client, self.timeout_s)
        if self._closing:
            await asyncio.wait(self._closing, timeout=self.timeout_s)


async def _close_quietly(client: aetcd.Client, timeout_s: float = 10.0) -> None:
    try:
        await asyncio.wait_for(client.close(), timeout_s)
    except Exception:  # noqa: BLE001 - a broken channel may not close cleanly; it is dropped either way
        pass


def _cancelled_by_a_channel_close() -> bool:
    """gRPC ends a call whose channel was closed under it with asyncio.CancelledError. When nobody cancelled the
    task itself, that is the member being unreachable for this call, not a request to stop: letting it through
    ended the broker's keep-alive task for good after a network cut (the watch, failing, closed the shared
    channel under the keep-alive's call), so the broker never rejoined."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() == 0


class EtcdStore:
    def __init__(self, endpoints: list[tuple[str, int]], timeout_s: float = 2.0):
        if not endpoints:
            raise ValueError("no etcd endpoints")
        self.endpoints = endpoints
        self.timeout_s = timeout_s
        self._calls = _Channel(endpoints, timeout_s)  # reads, transactions, leases; each watch has its own
        self._lease_ttl_s: dict[int, int] = {}  # the leases granted here: a keep-alive's deadline follows its TTL

    # ------------------------------------------------------------------ calls

    async def _call(self, fn, *, idempotent: bool = True, attempt_s: float | None = None):
        """Run `fn(client)`; on an unreachable member rotate to the next, trying each member once. A call that
        is not idempotent (a transaction) goes to the next member only if it cannot have been sent. `attempt_s`:
        the gRPC deadline `fn` gives its call (the store's timeout unless said)."""
        last: BaseException | None = None
        for _ in range(len(self.endpoints)):
            used = self._calls.client
            try:
                # A local deadline on the whole attempt, connecting included: gRPC's own deadline does not cover
                # everything (a call that hung on a channel to an etcd that had just restarted was seen).
                return await asyncio.wait_for(self._attempt(fn), (attempt_s or self.timeout_s) * 2)
            except asyncio.CancelledError:
                if not _cancelled_by_a_channel_close():
                    raise
                last = ConnectionError("the call's channel was closed under it")
                self._calls.rotate(used)  # (already rotated by whoever closed it: then nothing happens)
                if not idempotent:
                    break  # it may have been applied
            except _UNREACHABLE as e:
                last = e
                log.warning("etcd %s:%d unreachable: %s", *self._calls.endpoint, _brief(e))
                self._calls.rotate(used or self._calls.client)
                if not idempotent and not _never_sent(e):
                    break
        raise StoreUnavailable(f"no etcd member answered: {_brief(last)}")

    async def _attempt(self, fn):
        return await fn(await self._calls.connected())

    async def close(self) -> None:
        await self._calls.close()

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
        ttl_s = max(1, -(-ttl_ms // 1000))
        lease = await self._call(lambda c: c.lease(ttl_s))
        self._lease_ttl_s[lease.id] = ttl_s
        return lease.id

    async def keep_alive(self, lease: int) -> None:
        """One keep-alive on a stream of its own, abandoned after its one answer (or its deadline): a stream
        kept open across a network cut can stay stalled long after the network is back. Each member is given a
        quarter of the TTL: a frozen member, or one whose cluster is still electing a leader, must not use up the
        lease before the others are asked (seen: 2 s on each of two members, and a 3 s lease expired)."""
        attempt_s = min(self.timeout_s, max(0.5, self._lease_ttl_s.get(lease, 4) / 4))

        async def refresh(client: aetcd.Client):
            call = client.leasestub.LeaseKeepAlive(iter([rpc.LeaseKeepAliveRequest(ID=lease)]),
                                                   timeout=attempt_s, metadata=client.metadata)
            try:
                return await call.read()
            except grpc.aio.AioRpcError as e:
                if e.code() == grpc.StatusCode.NOT_FOUND:
                    raise LeaseExpired(f"lease {lease:x} is gone: {e.details()}") from None
                raise
            finally:
                call.cancel()

        reply = await self._call(refresh, attempt_s=attempt_s)
        if reply is grpc.aio.EOF or reply.TTL <= 0:
            raise LeaseExpired(f"lease {lease:x} is gone")

    async def revoke_lease(self, lease: int) -> None:
        try:
            await self._call(lambda c: c.revoke_lease(lease))
        except aetcd.ClientError as e:
            _raise_if_lease_gone(e)
            raise

    # ------------------------------------------------------------------ watches

    async def watch_prefix(self, prefix: str, start_revision: int) -> AsyncIterator[Event]:
        """Events from `start_revision` on, for ever: a broken stream is resumed (on the next member) from the
        revision after the last one delivered. The watch has a channel of its own, so that a watch failing over
        and the keep-alive failing over never close each other's calls."""
        channel = _Channel(self.endpoints, self.timeout_s, first=self._calls.current)
        # One transaction's changes share a revision and may be cut apart by a broken stream: resume at the last
        # revision delivered, skipping the keys already delivered at it.
        resume_at, delivered = start_revision, set()
        try:
            while True:
                used = channel.client
                try:
                    client = await asyncio.wait_for(channel.connected(), self.timeout_s)
                    used = client
                    watch = await asyncio.wait_for(
                        client.watch_prefix(prefix.encode(), start_revision=resume_at), self.timeout_s * 2)
                    try:
                        async for event in _probed(client, watch, self.timeout_s * 2):
                            kv = event.kv
                            key = kv.key.decode()
                            if kv.mod_revision == resume_at and key in delivered:
                                continue
                            if kv.mod_revision != resume_at:
                                resume_at, delivered = kv.mod_revision, set()
                            delivered.add(key)
                            yield Event("put" if event.kind == "PUT" else "delete", key,
                                        kv.value if event.kind == "PUT" else b"", kv.mod_revision,
                                        kv.create_revision)
                    finally:
                        try:
                            await asyncio.wait_for(watch.cancel(), self.timeout_s)
                        except Exception:  # noqa: BLE001 - a stream on a broken channel may not cancel cleanly
                            pass
                    raise ConnectionError("the watch stream ended")  # (its channel was closed): resume
                except asyncio.CancelledError:
                    if not _cancelled_by_a_channel_close():
                        raise
                    error: BaseException = ConnectionError("the watch's channel was closed under it")
                except (aetcd.WatchTimeoutError, ConnectionError, *_UNREACHABLE) as e:
                    # (WatchTimeoutError: etcd took the connection but did not create the watch in time, as while
                    # it restarts; the watch task must never end, or this broker's metadata freezes.)
                    error = e
                log.warning("etcd watch of %s on %s:%d broke at revision %d: %s; resuming", prefix,
                            *channel.endpoint, resume_at, _brief(error))
                channel.rotate(used)
                await asyncio.sleep(0.2)  # back off before the next member (a retry pace, not a wait for an event)
        finally:
            await channel.close()


async def _probed(client: aetcd.Client, watch, silence_s: float):
    """The watch's events; after each `silence_s` without one, a read on the same channel must answer (the
    client's deadline), or the stream is given up (ConnectionTimeoutError): a member that stops answering without
    closing its connections (a frozen process) leaves a watch silent for ever, and gRPC's keepalive pings were not
    seen to notice it. A read is linearizable, so a member cut from its quorum fails it too."""
    events = watch.__aiter__()
    while True:
        pending = asyncio.ensure_future(events.__anext__())
        try:
            while not (await asyncio.wait({pending}, timeout=silence_s))[0]:
                await client.get(b"\0kafkalite-watch-probe")
        except BaseException:
            pending.cancel()
            raise
        try:
            yield pending.result()
        except StopAsyncIteration:
            return


def _brief(error: BaseException | None) -> str:
    """One line for the log: gRPC's errors print over several."""
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return repr(error)


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
