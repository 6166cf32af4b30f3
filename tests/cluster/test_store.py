"""The metadata store's contract (cluster/store.py), held by the in-memory store and by etcd alike.

Every test runs against both: the in-memory store with a ManualClock, and a real etcd on loopback through
the adapter (which skips on a laptop without etcd-server and fails under CI=true)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from kafkalite.clock import ManualClock
from kafkalite.cluster.memory import MemoryStore
from kafkalite.cluster.store import Compare, Delete, LeaseExpired, Put, StoreUnavailable

_prefixes = itertools.count()


@pytest.fixture(params=["memory", "etcd"])
async def store(request):
    if request.param == "memory":
        yield MemoryStore(ManualClock(1_000))
        return
    from kafkalite.cluster.etcd import EtcdStore

    etcd = request.getfixturevalue("etcd")
    host, port = etcd.endpoint.split(":")
    adapter = EtcdStore([(host, int(port))])
    yield adapter
    await adapter.close()


@pytest.fixture
def prefix():
    return f"test/{next(_prefixes)}/"  # tests share one etcd: each gets its own keys


async def test_a_put_records_create_and_mod_revisions(store, prefix):
    r1 = await store.txn([], [Put(prefix + "a", b"1")])
    r2 = await store.txn([], [Put(prefix + "a", b"2")])
    kv = await store.get(prefix + "a")
    assert kv.value == b"2" and kv.create_revision == r1.revision and kv.mod_revision == r2.revision
    assert kv.version == 2
    assert await store.get(prefix + "missing") is None


async def test_create_if_absent_succeeds_once(store, prefix):
    absent = Compare(prefix + "controller", "create", "==", 0)
    first = await store.txn([absent], [Put(prefix + "controller", b"1")])
    second = await store.txn([absent], [Put(prefix + "controller", b"2")])
    assert first.succeeded and not second.succeeded
    assert (await store.get(prefix + "controller")).value == b"1"


async def test_compare_and_swap_on_mod_revision_fails_after_another_write(store, prefix):
    await store.txn([], [Put(prefix + "p", b"v1")])
    seen = (await store.get(prefix + "p")).mod_revision
    await store.txn([], [Put(prefix + "p", b"v2")])  # someone else's change
    lost = await store.txn([Compare(prefix + "p", "mod", "==", seen)], [Put(prefix + "p", b"mine")],
                           [Put(prefix + "conflicts", b"1")])
    assert not lost.succeeded
    assert (await store.get(prefix + "p")).value == b"v2"
    assert (await store.get(prefix + "conflicts")).value == b"1", "the failure branch did not run"


async def test_get_prefix_is_sorted_and_delete_prefix_removes_them_all(store, prefix):
    await store.txn([], [Put(prefix + "b", b"2"), Put(prefix + "a", b"1"), Put(prefix + "c/x", b"3")])
    kvs, revision = await store.get_prefix(prefix)
    assert [kv.key for kv in kvs] == [prefix + "a", prefix + "b", prefix + "c/x"]
    assert revision >= max(kv.mod_revision for kv in kvs)
    await store.txn([], [Delete(prefix + "c/", prefix=True), Delete(prefix + "a")])
    kvs, _ = await store.get_prefix(prefix)
    assert [kv.key for kv in kvs] == [prefix + "b"]


async def test_a_watch_from_a_revision_replays_what_came_after_and_follows(store, prefix):
    await store.txn([], [Put(prefix + "x", b"before")])
    start = (await store.txn([], [Put(prefix + "x", b"first")])).revision
    events = store.watch_prefix(prefix, start)
    first = await asyncio.wait_for(events.__anext__(), 5)
    assert (first.kind, first.value, first.revision) == ("put", b"first", start)
    await store.txn([], [Delete(prefix + "x")])
    deleted = await asyncio.wait_for(events.__anext__(), 5)
    assert deleted.kind == "delete" and deleted.key == prefix + "x" and deleted.revision > start
    await events.aclose()


async def test_keys_on_a_revoked_lease_are_deleted_and_the_lease_cannot_be_renewed(store, prefix):
    lease = await store.grant_lease(5_000)
    await store.txn([], [Put(prefix + "brokers/1", b"up", lease=lease)])
    assert (await store.get(prefix + "brokers/1")).lease == lease
    await store.keep_alive(lease)
    await store.revoke_lease(lease)
    assert await store.get(prefix + "brokers/1") is None
    with pytest.raises(LeaseExpired):
        await store.keep_alive(lease)


async def test_memory_leases_expire_on_the_injected_clock_unless_kept_alive():
    clock = ManualClock(0)
    store = MemoryStore(clock)
    lease = await store.grant_lease(3_000)
    await store.txn([], [Put("brokers/1", b"up", lease=lease)])
    clock.advance(2_000)
    await store.keep_alive(lease)
    clock.advance(2_999)
    assert await store.get("brokers/1") is not None
    clock.advance(1)
    assert await store.get("brokers/1") is None and not store.lease_alive(lease)


async def test_a_memory_store_without_quorum_refuses_calls_and_expires_nothing():
    clock = ManualClock(0)
    store = MemoryStore(clock)
    lease = await store.grant_lease(1_000)
    await store.txn([], [Put("k", b"v", lease=lease)])
    store.unavailable = True
    with pytest.raises(StoreUnavailable):
        await store.get("k")
    clock.advance(5_000)
    store.unavailable = False
    assert (await store.get("k")).value == b"v", "a lease expired while the store had no quorum"


async def test_the_etcd_adapter_rotates_past_a_dead_endpoint(etcd, prefix):
    from kafkalite.cluster.etcd import EtcdStore

    from etcdproc import free_port

    host, port = etcd.endpoint.split(":")
    adapter = EtcdStore([("127.0.0.1", free_port()), (host, int(port))], timeout_s=1.0)
    try:
        await adapter.txn([], [Put(prefix + "k", b"v")])
        assert (await adapter.get(prefix + "k")).value == b"v"
    finally:
        await adapter.close()


async def test_an_unreachable_etcd_is_store_unavailable():
    from kafkalite.cluster.etcd import EtcdStore

    from etcdproc import free_port

    adapter = EtcdStore([("127.0.0.1", free_port())], timeout_s=0.5)
    with pytest.raises(StoreUnavailable):
        await adapter.get("k")
    await adapter.close()


def test_cluster_urls_parse_into_endpoints_and_a_name():
    from kafkalite.cluster.etcd import parse_endpoints

    assert parse_endpoints("etcd://127.0.0.21:2379,127.0.0.22:2379/prod") == (
        [("127.0.0.21", 2379), ("127.0.0.22", 2379)], "prod")
    for bad in ("http://h:1/x", "etcd://h:1", "etcd://h/x", "etcd://h:1/a/b"):
        with pytest.raises(ValueError):
            parse_endpoints(bad)
