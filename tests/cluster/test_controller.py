"""The controller against the in-memory store: failover, controlled shutdown, fencing of a deposed controller."""

import uuid

from kafkalite.clock import ManualClock
from kafkalite.cluster.controller import Controller
from kafkalite.cluster.memory import MemoryStore
from kafkalite.cluster.records import (
    BROKER_SHUTTING_DOWN, ClusterState, Keys, TopicRecord, encode_broker, encode_partition, encode_topic,
)
from kafkalite.cluster.store import Delete, Put
from kafkalite.metadata.image import BrokerInfo, PartitionInfo

KEYS = Keys("ctl")
TID = uuid.uuid4()


async def cluster(brokers=(1, 2, 3), leader=1):
    store = MemoryStore(ManualClock(0))
    ops = [Put(KEYS.broker(b), encode_broker(BrokerInfo(b, "h", b))) for b in brokers]
    ops += [Put(KEYS.topic("t"), encode_topic(TopicRecord("t", TID, 1, 3, {}))),
            Put(KEYS.partition(TID, 0), encode_partition(PartitionInfo((1, 2, 3), leader, 0, (1, 2, 3))))]
    await store.txn([], ops)
    won = await store.txn([], [Put(KEYS.controller, b"2")])
    return store, Controller(store, KEYS, won.revision)


async def state_of(store) -> ClusterState:
    state = ClusterState(KEYS)
    state.load(*await store.get_prefix(KEYS.root))
    return state


async def test_a_dead_leader_is_replaced_and_a_live_one_is_left_alone():
    store, controller = await cluster()
    assert await controller.reconcile(await state_of(store)) == 0
    await store.txn([], [Delete(KEYS.broker(1))])  # broker 1's lease expired
    assert await controller.reconcile(await state_of(store)) == 1
    p, _ = (await state_of(store)).partition("t", 0)
    assert (p.leader, p.leader_epoch, p.isr) == (2, 1, (2, 3))


async def test_controlled_shutdown_moves_leadership_before_the_broker_goes():
    store, controller = await cluster()
    await store.txn([], [Put(KEYS.broker(1), encode_broker(BrokerInfo(1, "h", 1), BROKER_SHUTTING_DOWN))])
    await controller.reconcile(await state_of(store))
    p, _ = (await state_of(store)).partition("t", 0)
    assert p.leader == 2 and 1 in p.isr, "a broker shutting down is still in sync until it stops"


async def test_preferred_leaders_return_only_when_asked():
    store, controller = await cluster(leader=3)
    await controller.reconcile(await state_of(store))
    assert (await state_of(store)).partition("t", 0)[0].leader == 3
    await controller.reconcile(await state_of(store), preferred=True)
    assert (await state_of(store)).partition("t", 0)[0].leader == 1


async def test_a_deposed_controller_writes_nothing():
    store, controller = await cluster()
    await store.txn([], [Delete(KEYS.controller)])
    await store.txn([], [Put(KEYS.controller, b"3")])  # someone else won meanwhile
    await store.txn([], [Delete(KEYS.broker(1))])
    assert await controller.reconcile(await state_of(store)) == 0
    assert controller.deposed
    assert (await state_of(store)).partition("t", 0)[0].leader == 1


async def test_a_concurrent_isr_change_wins_and_the_next_reconcile_builds_on_it():
    store, controller = await cluster()
    stale = await state_of(store)
    await store.txn([], [Put(KEYS.partition(TID, 0), encode_partition(PartitionInfo((1, 2, 3), 1, 0, (1, 3), 1)))])
    await store.txn([], [Delete(KEYS.broker(1))])
    stale.brokers.pop(1)
    assert await controller.reconcile(stale) == 0 and not controller.deposed
    await controller.reconcile(await state_of(store))
    p, _ = (await state_of(store)).partition("t", 0)
    assert p.leader == 3 and p.isr == (3,), "broker 2 was out of the ISR and must not lead"
