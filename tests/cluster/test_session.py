"""Broker registration, self-fencing and the controller election (cluster/session.py), on the in-memory store
with a ManualClock: every lease and deadline moves only when the test moves time."""

import pytest

from kafkalite.clock import ManualClock
from kafkalite.cluster.memory import MemoryStore
from kafkalite.cluster.records import ClusterState, Keys
from kafkalite.cluster.session import BrokerSession, RegistrationError
from kafkalite.metadata.image import BrokerInfo

TTL = 3_000
KEYS = Keys("test")


def session(store, clock, node: int) -> BrokerSession:
    return BrokerSession(store, KEYS, BrokerInfo(node, "127.0.0.1", 9000 + node), clock, TTL)


async def test_a_second_broker_with_the_same_node_id_is_refused():
    clock = ManualClock(0)
    store = MemoryStore(clock)
    first = session(store, clock, 1)
    epoch = await first.register()
    assert (await store.get(KEYS.broker(1))).create_revision == epoch
    with pytest.raises(RegistrationError, match="already registered"):
        await session(store, clock, 1).register()
    await first.leave()
    assert await session(store, clock, 1).register() > epoch, "a re-registered broker must get a newer epoch"


async def test_a_broker_fences_itself_when_its_keep_alives_go_unanswered_for_a_ttl():
    clock = ManualClock(0)
    store = MemoryStore(clock)
    broker = session(store, clock, 1)
    await broker.register()
    for _ in range(5):  # kept alive: never fenced
        clock.advance(broker.keep_alive_interval_ms)
        await broker.tick()
        assert not broker.fenced()
    store.unavailable = True  # cut off from etcd
    clock.advance(broker.keep_alive_interval_ms)
    await broker.tick()
    assert not broker.fenced()
    clock.advance(TTL - broker.keep_alive_interval_ms - 1)
    await broker.tick()
    assert not broker.fenced()
    clock.advance(1)
    assert broker.fenced(), "past last confirmed keep-alive + TTL the broker must refuse to lead"


async def test_a_lost_lease_is_never_renewed_the_broker_registers_again_with_a_new_epoch():
    clock = ManualClock(0)
    store = MemoryStore(clock)
    broker = session(store, clock, 1)
    first = await broker.register()
    clock.advance(TTL)  # a SIGSTOPped broker: no keep-alive, etcd expires the lease
    assert await store.get(KEYS.broker(1)) is None
    old_lease = broker.lease
    store.unavailable = True  # and it cannot register again at once
    await broker.tick()
    assert broker.fenced()
    store.unavailable = False
    await broker.tick()
    assert not broker.fenced(), "a broker whose lease expired must come back, as a new registration"
    assert broker.lease != old_lease and broker.epoch > first
    assert (await store.get(KEYS.broker(1))).create_revision == broker.epoch
    await broker.leave()
    await broker.tick()
    assert broker.fenced() and await store.get(KEYS.broker(1)) is None, "a broker that left registered again"


async def test_a_data_dir_of_another_cluster_is_refused():
    clock = ManualClock(0)
    store = MemoryStore(clock)
    first = await session(store, clock, 1).join_cluster_id(None)
    assert await session(store, clock, 2).join_cluster_id(first) == first
    assert await session(store, clock, 3).join_cluster_id(None) == first
    with pytest.raises(RegistrationError, match="belongs to cluster"):
        await session(store, clock, 4).join_cluster_id("someothercluster")


async def test_one_controller_at_a_time_and_the_next_one_has_a_higher_epoch():
    clock = ManualClock(0)
    store = MemoryStore(clock)
    a, b = session(store, clock, 1), session(store, clock, 2)
    await a.register()
    await b.register()
    epoch_a = await a.campaign()
    assert epoch_a is not None and await b.campaign() is None
    state = ClusterState(KEYS)
    state.load(*await store.get_prefix(KEYS.root))
    assert state.controller == (1, epoch_a) and state.image().controller_id == 1
    for _ in range(6):  # a stops renewing; b keeps its lease
        clock.advance(b.keep_alive_interval_ms)
        await b.tick()
    assert await store.get(KEYS.controller) is None, "the controller key outlived its lease"
    epoch_b = await b.campaign()
    assert epoch_b is not None and epoch_b > epoch_a


async def test_a_fenced_broker_does_not_campaign():
    clock = ManualClock(0)
    store = MemoryStore(clock)
    a = session(store, clock, 1)
    await a.register()
    store.unavailable = True
    clock.advance(TTL)
    store.unavailable = False
    assert a.fenced() and await a.campaign() is None


async def test_after_registering_again_the_broker_leads_nothing_until_its_metadata_has_caught_up():
    """A broker that was stopped past its lease registers again; until its watch has brought it every change up
    to that registration, its image may still say it leads partitions the controller moved meanwhile."""
    from kafkalite.cluster.member import ClusterMember
    from kafkalite.cluster.metadata import ClusterMetadataStore
    from kafkalite.log.manager import LogManager

    clock = ManualClock(0)
    store = MemoryStore(clock)
    logs = LogManager("/nonexistent-never-opened")
    broker = BrokerInfo(1, "127.0.0.1", 9001)
    metadata = ClusterMetadataStore(store, KEYS, logs, broker, default_replication_factor=lambda: 1)
    member = ClusterMember(store, "test", broker, metadata, clock, session_timeout_ms=TTL)
    await member.session.register()
    metadata.state.revision = member.session.epoch  # the image is current
    assert not member.fenced()
    clock.advance(TTL)  # stopped past its lease; then it comes back and registers again
    await member.session.tick()
    assert not member.session.fenced()
    assert member.fenced(), "led on an image older than its new registration"
    metadata.state.revision = member.session.epoch
    assert not member.fenced()


async def test_a_restart_right_after_a_crash_waits_for_its_old_registration_to_expire():
    """kill -9, then a restart at once: etcd still holds the dead run's key (same id, same address) until its
    lease runs out. The new run waits for that instead of refusing; another broker with the same id is refused."""
    import asyncio

    clock = ManualClock(0)
    store = MemoryStore(clock)
    await session(store, clock, 1).register()  # the run that was killed: nobody keeps its lease alive
    clock.advance(1_000)
    restarted = asyncio.create_task(session(store, clock, 1).register(wait_for_old=True))
    await asyncio.sleep(0.05)
    assert not restarted.done()
    clock.advance(TTL)  # the old lease expires
    epoch = await asyncio.wait_for(restarted, 5)
    assert (await store.get(KEYS.broker(1))).create_revision == epoch
    elsewhere = BrokerSession(store, KEYS, BrokerInfo(1, "10.0.0.9", 9001), clock, TTL)
    with pytest.raises(RegistrationError, match="already registered"):
        await elsewhere.register(wait_for_old=True)


async def test_the_lease_taken_while_waiting_for_the_old_registration_is_kept_alive_meanwhile():
    """Every broker restarted at once (a power cut): each waits most of a TTL for its old key to expire. The lease
    it took before waiting must be renewed meanwhile, or it expires soon after the key is created on it (the
    broker lost its fresh registration a second or two after a restart)."""
    import asyncio

    clock = ManualClock(0)
    store = MemoryStore(clock)
    await session(store, clock, 1).register()  # the dead run's key, expiring at 3,000
    clock.advance(1_000)
    restarted = session(store, clock, 1)
    registering = asyncio.create_task(restarted.register(wait_for_old=True))  # its lease: 1,000 + TTL
    await asyncio.sleep(0.05)
    clock.advance(2_000)  # the old key expires; the new lease has 1,000 ms left unless renewed
    epoch = await asyncio.wait_for(registering, 5)
    clock.advance(TTL - 500)  # within a TTL of registering, but past the lease's first deadline
    kv = await store.get(KEYS.broker(1))
    assert kv is not None and kv.create_revision == epoch, "the fresh registration expired on an old lease"
    await restarted.tick()
    assert not restarted.fenced()
