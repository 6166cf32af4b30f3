"""A broker's membership in the cluster: the cluster id check, its lease, its registration, self-fencing, and the
controller election (CLUSTER.md, "Broker lifecycle" and "Controller").

The lease is kept alive every TTL/3. The broker keeps its own deadline: "last keep-alive sent that etcd
answered, plus the TTL". Past it the lease may be gone (etcd expires it on its own clock), so the broker fences
itself at once: it must acknowledge nothing as leader, whatever etcd later says. Time comes from the injected
clock; the keep-alive loop is driven by `tick()` so tests drive it too.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from kafkalite.clock import Clock
from kafkalite.cluster.records import BROKER_RUNNING, BROKER_SHUTTING_DOWN, Keys, decode_broker, encode_broker
from kafkalite.cluster.store import Compare, Delete, LeaseExpired, MetadataStore, Put, StoreUnavailable
from kafkalite.metadata.image import BrokerInfo

log = logging.getLogger("kafkalite.cluster")


class RegistrationError(Exception):
    """The broker cannot join: another broker has its node id, or its data dir belongs to another cluster."""


class BrokerSession:
    def __init__(self, store: MetadataStore, keys: Keys, broker: BrokerInfo, clock: Clock, ttl_ms: int):
        self.store = store
        self.keys = keys
        self.broker = broker
        self.clock = clock
        self.ttl_ms = ttl_ms
        self.lease = 0
        self.epoch = -1  # the broker epoch: create_revision of brokers/<id>
        self._confirmed_sent_ms = -1  # when the last keep-alive that etcd answered was sent
        self._lost = False
        self._leaving = False  # leave() was called: never register again

    async def join_cluster_id(self, local_cluster_id: str | None) -> str:
        """The cluster's id, made by the first broker; a data dir that holds another id refuses to start."""
        candidate = local_cluster_id or uuid.uuid4().hex[:22]
        await self.store.txn([Compare(self.keys.cluster_id, "create", "==", 0)],
                             [Put(self.keys.cluster_id, candidate.encode())])
        cluster_id = (await self.store.get(self.keys.cluster_id)).value.decode()
        if local_cluster_id and local_cluster_id != cluster_id:
            raise RegistrationError(f"this data dir belongs to cluster {local_cluster_id}, but the cluster's id is "
                                    f"{cluster_id}: point --data-dir at this cluster's data or at an empty dir")
        return cluster_id

    async def register(self, wait_for_old: bool = False) -> int:
        """Take a lease and create brokers/<id> on it; returns the broker epoch. With `wait_for_old`, a key still
        there is given one lease TTL to expire first: this broker holds its data dir's lock, so a registration of
        its id from the same place is its own previous run (killed just now), whose lease etcd has not expired yet."""
        sent = self.clock.now_ms()
        self.lease = await self.store.grant_lease(self.ttl_ms)
        key = self.keys.broker(self.broker.node_id)
        deadline = self.clock.now_ms() + (self.ttl_ms + 1000 if wait_for_old else 0)
        while True:
            try:
                result = await self.store.txn([Compare(key, "create", "==", 0)],
                                              [Put(key, encode_broker(self.broker), lease=self.lease)])
            except LeaseExpired:  # our own new lease ran out while we waited: take another
                self.lease = await self.store.grant_lease(self.ttl_ms)
                sent = self.clock.now_ms()
                continue
            if result.succeeded:
                break
            old = await self.store.get(key)
            same_place = old is not None and decode_broker(self.broker.node_id, old.value, 0).info == self.broker
            if not same_place or self.clock.now_ms() >= deadline:
                await self.store.revoke_lease(self.lease)
                raise RegistrationError(f"broker id {self.broker.node_id} is already registered in the cluster: "
                                        f"give each broker its own --node-id")
            await asyncio.sleep(0.2)  # a retry pace while the previous run's lease runs out
            # Keep our new lease alive meanwhile: the wait can take most of a TTL, and a lease granted at its
            # start would expire soon after the key is created on it.
            sent = self.clock.now_ms()
            try:
                await self.store.keep_alive(self.lease)
            except LeaseExpired:
                self.lease = await self.store.grant_lease(self.ttl_ms)
        self._confirmed_sent_ms = sent
        self.epoch = result.revision
        log.info("registered as broker %d (epoch %d) on lease %x", self.broker.node_id, self.epoch, self.lease)
        return self.epoch

    @property
    def keep_alive_interval_ms(self) -> int:
        return max(1, self.ttl_ms // 3)

    def fenced(self) -> bool:
        """True once the lease may have expired: the broker then acknowledges nothing as leader."""
        return self._lost or self.clock.now_ms() >= self._confirmed_sent_ms + self.ttl_ms

    async def tick(self) -> None:
        """One keep-alive (call every keep_alive_interval_ms). A lost lease is never renewed: the broker registers
        again, with a new lease and so a new broker epoch, and stays fenced until that succeeds (the controller has
        moved its leadership away meanwhile; it comes back as a follower)."""
        if self._lost:
            if not self._leaving:
                await self._register_again()
            return
        sent = self.clock.now_ms()
        try:
            await self.store.keep_alive(self.lease)
        except LeaseExpired:
            self._lost = True
            log.error("broker %d lost its lease: fenced until it registers again", self.broker.node_id)
            await self._register_again()
            return
        except StoreUnavailable as e:
            log.warning("keep-alive of broker %d failed: %s", self.broker.node_id, e)
            return
        self._confirmed_sent_ms = max(self._confirmed_sent_ms, sent)

    async def _register_again(self) -> None:
        try:
            await self.register()
        except (RegistrationError, StoreUnavailable, LeaseExpired) as e:
            log.warning("broker %d cannot register again yet: %s", self.broker.node_id, e)
            return
        self._lost = False

    async def mark_shutting_down(self) -> None:
        """Controlled shutdown, step one: tell the controller to move leadership away."""
        key = self.keys.broker(self.broker.node_id)
        await self.store.txn([Compare(key, "create", "==", self.epoch)],
                             [Put(key, encode_broker(self.broker, BROKER_SHUTTING_DOWN), lease=self.lease)])

    async def leave(self) -> None:
        """Revoke the lease: the broker's key (and the controller key, if it holds it) go with it."""
        self._leaving = True
        if self.lease:
            try:
                await self.store.revoke_lease(self.lease)
            except (StoreUnavailable, LeaseExpired):
                pass  # it expires on its own
        self._lost = True

    # ------------------------------------------------------------------ the controller election

    async def campaign(self) -> int | None:
        """Try to become controller (create-if-absent on our lease); returns the controller epoch if won."""
        if self.fenced():
            return None
        result = await self.store.txn([Compare(self.keys.controller, "create", "==", 0)],
                                      [Put(self.keys.controller, str(self.broker.node_id).encode(), lease=self.lease)])
        if not result.succeeded:
            return None
        log.info("broker %d is the controller (epoch %d)", self.broker.node_id, result.revision)
        return result.revision

    async def resign(self, controller_epoch: int) -> None:
        await self.store.txn([Compare(self.keys.controller, "create", "==", controller_epoch)],
                             [Delete(self.keys.controller)])


__all__ = ["BROKER_RUNNING", "BrokerSession", "RegistrationError"]
