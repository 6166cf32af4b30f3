"""The controller: whichever broker holds the `controller` key. It keeps every partition led by a live in-sync
replica, moving leadership off brokers that die or shut down, returns preferred leaders, and drives
reassignments.

On winning it reads everything at one revision and reconciles; then it reconciles again after every change it
sees. A reconcile looks only at the state, never at which event arrived, so a missed or merged event changes
nothing. Every write is fenced twice: on the controller key's create_revision (this controller's epoch; a
deposed controller's writes fail) and on the partition's mod_revision (a leader's concurrent ISR change wins,
and the next reconcile sees it).
"""

from __future__ import annotations

import logging

from kafkalite.cluster import decisions
from kafkalite.cluster.records import ClusterState, Keys, encode_partition
from kafkalite.cluster.store import Compare, MetadataStore, Put
from kafkalite.metadata.image import PartitionInfo

log = logging.getLogger("kafkalite.controller")

# Partitions written in one store transaction: etcd refuses a transaction of more than 128 operations (its
# --max-txn-ops default), and each partition adds a compare and a put.
PARTITIONS_PER_TXN = 100


class Controller:
    def __init__(self, store: MetadataStore, keys: Keys, epoch: int, *, unclean_election: bool = False):
        self.store = store
        self.keys = keys
        self.epoch = epoch  # the create_revision of the controller key we hold
        self.unclean_election = unclean_election
        self.deposed = False

    def plan(self, state: ClusterState, preferred: bool = False) -> list[tuple[str, PartitionInfo, PartitionInfo, int]]:
        """(key, old, new, mod_revision) for every partition whose record must change; with `preferred`, also
        leadership back to preferred replicas (auto.leader.rebalance.enable, run now and then, as in Kafka)."""
        live = state.live_brokers()
        leaving = state.shutting_down()
        changes = []
        for name, topic in state.topics.items():
            for index in range(topic.partitions):
                found = state.partitions.get((topic.topic_id, index))
                if found is None:
                    continue
                old, mod_revision = found
                elect = decisions.elect_after_restart if state.leader_restarted(old, mod_revision) \
                    else decisions.elect_leader
                new = elect(old, live, self.unclean_election, excluded=leaving)
                new = decisions.step_reassignment(new, live - leaving)
                if preferred and new.leader != -1:
                    new = decisions.preferred_leader(new, live - leaving)
                if new != old:
                    changes.append((self.keys.partition(topic.topic_id, index), old, new, mod_revision))
        return changes

    async def reconcile(self, state: ClusterState, preferred: bool = False) -> int:
        """Write the planned changes; returns how many were applied. Many partitions move at once when a broker
        dies, so they are written a batch to a transaction. A batch that fails because a partition changed
        meanwhile is written again one partition at a time; one that fails because another broker holds the
        controller key stops everything (deposed)."""
        changes = self.plan(state, preferred)
        applied = 0
        for start in range(0, len(changes), PARTITIONS_PER_TXN):
            batch = changes[start:start + PARTITIONS_PER_TXN]
            if await self._write(batch):
                applied += len(batch)
                continue
            if await self._deposed():
                return applied
            # A partition changed meanwhile: the others one at a time (that one waits for the next reconcile).
            for change in batch if len(batch) > 1 else ():
                applied += await self._write([change])
        return applied

    async def _write(self, changes: list[tuple[str, PartitionInfo, PartitionInfo, int]]) -> bool:
        """One transaction, fenced on this controller's epoch and on each partition's mod_revision."""
        compares = [Compare(self.keys.controller, "create", "==", self.epoch)]
        compares += [Compare(key, "mod", "==", mod_revision) for key, _, _, mod_revision in changes]
        result = await self.store.txn(compares, [Put(key, encode_partition(new)) for key, _, new, _ in changes])
        if result.succeeded:
            for key, old, new, _ in changes:
                if new.leader != old.leader or new.leader_epoch != old.leader_epoch:
                    log.info("%s: leader %d -> %d at leader epoch %d, ISR %s", key, old.leader, new.leader,
                             new.leader_epoch, list(new.isr))
        return result.succeeded

    async def _deposed(self) -> bool:
        current = await self.store.get(self.keys.controller)
        if current is None or current.create_revision != self.epoch:
            self.deposed = True
            log.warning("no longer the controller (epoch %d): stopping", self.epoch)
        return self.deposed
