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


async def many_partitions(count: int, leader: int = 1, isr=(1, 2, 3)):
    store = MemoryStore(ManualClock(0))
    ops = [Put(KEYS.broker(b), encode_broker(BrokerInfo(b, "h", b))) for b in (1, 2, 3)]
    ops += [Put(KEYS.topic("t"), encode_topic(TopicRecord("t", TID, count, 3, {})))]
    ops += [Put(KEYS.partition(TID, i), encode_partition(PartitionInfo((1, 2, 3), leader, 0, isr)))
            for i in range(count)]
    await store.txn([], ops)
    won = await store.txn([], [Put(KEYS.controller, b"2")])
    return store, Controller(store, KEYS, won.revision)


def counting_transactions(store) -> list[int]:
    """Wrap the store's txn to count its calls (each an etcd round trip, and a raft commit)."""
    calls, txn = [], store.txn

    async def counted(compares, success, failure=()):
        calls.append(len(success))
        return await txn(compares, success, failure)

    store.txn = counted
    return calls


async def test_a_dead_broker_s_partitions_move_in_one_transaction_per_hundred():
    store, controller = await many_partitions(150)
    calls = counting_transactions(store)
    await store.txn([], [Delete(KEYS.broker(1))])
    assert await controller.reconcile(await state_of(store)) == 150
    assert calls[1:] == [100, 50], "one transaction per batch of partitions, within etcd's 128 operations"
    state = await state_of(store)
    assert {state.partition("t", i)[0].leader for i in range(150)} == {2}


async def test_a_batch_meeting_a_concurrent_change_is_written_one_partition_at_a_time():
    store, controller = await many_partitions(5)
    stale = await state_of(store)
    await store.txn([], [Put(KEYS.partition(TID, 3), encode_partition(PartitionInfo((1, 2, 3), 1, 0, (1, 3), 1)))])
    await store.txn([], [Delete(KEYS.broker(1))])
    stale.brokers.pop(1)
    assert await controller.reconcile(stale) == 4 and not controller.deposed
    state = await state_of(store)
    assert [state.partition("t", i)[0].leader for i in range(5)] == [2, 2, 2, 1, 2]
    assert await controller.reconcile(state) == 1
    assert (await state_of(store)).partition("t", 3)[0].leader == 3, "broker 2 was out of that ISR"


async def restart(store, node: int) -> None:
    """The broker died and registered again while no controller watched: a new key, so a new broker epoch."""
    await store.txn([], [Delete(KEYS.broker(node))])
    await store.txn([], [Put(KEYS.broker(node), encode_broker(BrokerInfo(node, "h", node)))])


async def test_a_leader_that_came_back_unseen_is_replaced_by_another_in_sync_replica():
    store, controller = await many_partitions(2)
    await restart(store, 1)
    state = await state_of(store)
    assert [p.leader for p in state.image().topics["t"].partitions] == [-1, -1], \
        "a leadership from the broker's earlier life is nobody's until the controller elects again"
    assert await controller.reconcile(state) == 2
    state = await state_of(store)
    p, _ = state.partition("t", 0)
    assert (p.leader, p.leader_epoch, p.isr) == (2, 1, (1, 2, 3))
    assert state.image().topics["t"].partitions[0].leader == 2
    assert await controller.reconcile(state) == 0, "decided once"


async def test_a_sole_in_sync_leader_that_came_back_unseen_leads_again_at_a_new_epoch():
    store, controller = await many_partitions(1, isr=(1,))
    await restart(store, 1)
    assert await controller.reconcile(await state_of(store)) == 1
    state = await state_of(store)
    p, _ = state.partition("t", 0)
    assert (p.leader, p.leader_epoch, p.partition_epoch, p.isr) == (1, 1, 1, (1,))
    assert state.image().topics["t"].partitions[0].leader == 1
    assert await controller.reconcile(state) == 0
