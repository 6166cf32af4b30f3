"""This broker as a member of a cluster: its session, the metadata it follows, the controller it may become, the
ISR changes it makes as a leader, and producer-id blocks from the store. The App builds one in cluster mode and
calls `join()` once the Kafka port is bound (so the registration carries the real address) and before it serves.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from typing import Callable

from kafkalite.clock import Clock
from kafkalite.cluster.controller import Controller
from kafkalite.cluster.metadata import ClusterMetadataStore
from kafkalite.cluster.records import Keys, encode_partition
from kafkalite.cluster.session import BrokerSession
from kafkalite.cluster.store import Compare, MetadataStore, Put, StoreUnavailable
from kafkalite.metadata.image import BrokerInfo

log = logging.getLogger("kafkalite.cluster")

PRODUCER_ID_BLOCK = 1000


class ClusterMember:
    def __init__(self, store: MetadataStore, cluster_name: str, broker: BrokerInfo, metadata: ClusterMetadataStore,
                 clock: Clock, *, session_timeout_ms: int, unclean_election: Callable[[], bool] = lambda: False,
                 rebalance_interval_s: float = 300.0, auto_rebalance: bool = True):
        self.store = store
        self.keys = Keys(cluster_name)
        self.clock = clock
        self.metadata = metadata
        self.session = BrokerSession(store, self.keys, broker, clock, session_timeout_ms)
        self.unclean_election = unclean_election
        self.rebalance_interval_s = rebalance_interval_s
        self.auto_rebalance = auto_rebalance
        self.controller: Controller | None = None
        self._reconcile_wanted = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._leaving = False
        self._next_pid = self._pid_limit = 0
        self._pids = asyncio.Lock()

    async def join(self, local_cluster_id: str | None) -> str:
        """Check the cluster id, register, load the metadata; then keep the session and campaign."""
        cluster_id = await self.session.join_cluster_id(local_cluster_id)
        await self.session.register(wait_for_old=True)  # a restart right after a crash finds its old key
        self.metadata.state_listeners.append(lambda _state: self._reconcile_wanted.set())
        await self.metadata.start()
        self._tasks.append(asyncio.create_task(self._keep_alive(), name="lease-keep-alive"))
        self._tasks.append(asyncio.create_task(self._control(), name="controller"))
        return cluster_id

    async def leave(self) -> None:
        self._leaving = True  # the loops end by this too: asyncio.wait_for in 3.11 can swallow a cancellation
        self._reconcile_wanted.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.metadata.stop()
        await self.session.leave()

    async def controlled_shutdown(self, timeout_s: float) -> None:
        """Mark this broker as shutting down and wait (up to `timeout_s`) until it leads nothing."""
        try:
            await self.session.mark_shutting_down()
        except StoreUnavailable:
            return
        deadline = asyncio.get_running_loop().time() + timeout_s
        me = self.session.broker.node_id

        def handing_over() -> bool:  # leading a partition that another live in-sync replica could take
            live = self.metadata.image.brokers
            return any(p.leader == me and any(r != me and r in live for r in p.isr)
                       for t in self.metadata.image.topics.values() for p in t.partitions)

        changed = asyncio.Event()  # the watch brought a new image: the controller may have moved a leader

        def listener(_image) -> None:
            changed.set()

        self.metadata.listeners.append(listener)
        try:
            while handing_over():
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    log.warning("controlled shutdown: still leading partitions after %.0f s; stopping anyway",
                                timeout_s)
                    return
                changed.clear()
                try:
                    await asyncio.wait_for(changed.wait(), remaining)
                except TimeoutError:
                    pass
        finally:
            self.metadata.listeners.remove(listener)

    def fenced(self) -> bool:
        """Leading nothing: the lease may be gone, or (after registering again) the metadata this broker acts on is
        older than its registration, and so may still name it leader of partitions that moved on meanwhile."""
        return self.session.fenced() or self.metadata.state.revision < self.session.epoch

    async def _keep_alive(self) -> None:
        while not self._leaving:
            await asyncio.sleep(self.session.keep_alive_interval_ms / 1000)
            epoch = self.session.epoch
            try:
                await self.session.tick()
            except Exception:  # noqa: BLE001 - the task must outlive any one failure, or the broker stays fenced
                log.exception("keep-alive of broker %d failed", self.session.broker.node_id)
            if self.session.epoch != epoch:  # registered again: catch up on a fresh watch, not a stalled one
                self.metadata.restart_watch()

    async def _control(self) -> None:
        """Campaign whenever there is no controller; as controller, reconcile after every change."""
        loop = asyncio.get_running_loop()
        last_rebalance = loop.time()
        while not self._leaving:
            try:
                state = self.metadata.state
                if self.controller is None or self.controller.deposed:
                    self.controller = None
                    if state.controller is None:
                        epoch = await self.session.campaign()
                        if epoch is not None:
                            self.controller = Controller(self.store, self.keys, epoch,
                                                         unclean_election=self.unclean_election())
                if self.controller is not None and not self.fenced():
                    preferred = self.auto_rebalance and loop.time() - last_rebalance >= self.rebalance_interval_s
                    await self.controller.reconcile(state, preferred=preferred)
                    if preferred:
                        last_rebalance = loop.time()
            except StoreUnavailable as e:
                log.warning("controller: %s", e)
            self._reconcile_wanted.clear()
            try:
                await asyncio.wait_for(self._reconcile_wanted.wait(), timeout=1.0)  # and a periodic check
            except asyncio.TimeoutError:
                pass

    # ------------------------------------------------------------------ ports for the replica manager

    async def change_isr(self, topic: str, index: int, leader_epoch: int, isr: tuple[int, ...]) -> bool:
        """A leader's ISR change, fenced on the partition's mod_revision and on this broker's epoch (Kafka's
        AlterPartition checks: leader epoch, partition epoch, broker epoch)."""
        if self.fenced():
            return False
        found = self.metadata.state.partition(topic, index)
        record = self.metadata.state.topics.get(topic)
        if found is None or record is None:
            return False
        current, mod_revision = found
        if current.leader != self.session.broker.node_id or current.leader_epoch != leader_epoch:
            return False
        new = replace(current, isr=isr, partition_epoch=current.partition_epoch + 1)
        key = self.keys.partition(record.topic_id, index)
        result = await self.store.txn(
            [Compare(key, "mod", "==", mod_revision),
             Compare(self.keys.broker(self.session.broker.node_id), "create", "==", self.session.epoch)],
            [Put(key, encode_partition(new))])
        if result.succeeded:
            log.info("%s-%d: ISR %s -> %s", topic, index, list(current.isr), list(isr))
        return result.succeeded

    async def allocate(self) -> int:
        """Producer ids from blocks reserved in the store by compare-and-swap: unique across the cluster."""
        async with self._pids:
            if self._next_pid >= self._pid_limit:
                while True:
                    kv = await self.store.get(self.keys.producer_ids)
                    start = json.loads(kv.value)["next_block"] if kv else 0
                    guard = Compare(self.keys.producer_ids, "mod", "==", kv.mod_revision if kv else 0)
                    put = Put(self.keys.producer_ids, json.dumps({"next_block": start + PRODUCER_ID_BLOCK}).encode())
                    if (await self.store.txn([guard], [put])).succeeded:
                        break
                self._next_pid, self._pid_limit = start, start + PRODUCER_ID_BLOCK
            pid = self._next_pid
            self._next_pid += 1
            return pid

