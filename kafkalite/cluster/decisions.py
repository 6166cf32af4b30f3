"""The controller's decisions, as pure functions over partition records: leader election, ISR changes, replica
placement, preferred leaders and reassignment. The controller service (asyncio) reads the store, calls these, and
writes what they return with fenced compare-and-swaps. No I/O here; tests call them directly.

Rules (CLUSTER.md, as Kafka's controller):
- A dead or leaving leader: the next replica in `replicas` order that is in the ISR and alive leads, at
  leader_epoch + 1. Nobody eligible: leader -1 (offline), unless unclean election is allowed, which takes the
  first live replica even if it is out of the ISR (and may lose acknowledged data, as in Kafka).
- Dead followers leave the ISR; the ISR is never emptied (its last member stays, so a later clean election can
  pick it when it returns).
- Every change bumps partition_epoch; a leader change also bumps leader_epoch.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Mapping

from kafkalite.metadata.image import NO_LEADER, PartitionInfo


def _changed(old: PartitionInfo, **fields) -> PartitionInfo:
    new = replace(old, **fields)
    if new.leader != old.leader:
        new = replace(new, leader_epoch=old.leader_epoch + 1)
    return replace(new, partition_epoch=old.partition_epoch + 1) if new != old else old


def elect_leader(partition: PartitionInfo, live: set[int], unclean: bool = False,
                 excluded: frozenset[int] = frozenset()) -> PartitionInfo:
    """The partition after its leader is re-checked against the live brokers (minus `excluded`: brokers
    shutting down). Unchanged if its leader is live, in the ISR and not excluded."""
    eligible = live - excluded
    isr = [r for r in partition.isr if r in live] or [r for r in partition.isr][:1]
    if partition.leader in eligible and partition.leader in isr:
        return _changed(partition, isr=tuple(isr))
    leader = next((r for r in partition.replicas if r in eligible and r in isr), None)
    if leader is None and partition.leader in live and partition.leader in isr:
        return _changed(partition, isr=tuple(isr))  # shutting down, but nobody else can take over: it stays
    if leader is None and unclean:
        leader = next((r for r in partition.replicas if r in eligible), None)
        if leader is not None:
            isr = [leader]  # an unclean leader starts a new history: only it is in sync
    if leader is None:
        return _changed(partition, leader=NO_LEADER, isr=tuple(isr))
    return _changed(partition, leader=leader, isr=tuple(isr))


def elect_after_restart(partition: PartitionInfo, live: set[int], unclean: bool = False,
                        excluded: frozenset[int] = frozenset()) -> PartitionInfo:
    """The partition whose leader is live but registered after this record was written: the leadership belongs
    to an earlier life of that broker (it died and came back unseen by any controller, as when every broker goes
    down at once) and its log may have lost what it had not fsynced. Elected afresh, as Kafka does after fencing
    a restarted broker: another live in-sync replica if there is one, else the same broker at a new leader epoch
    (so followers truncate by epoch against its log as it is now)."""
    new = elect_leader(partition, live, unclean, excluded | {partition.leader})
    if new.leader != partition.leader:
        return new
    return replace(new, leader_epoch=partition.leader_epoch + 1, partition_epoch=partition.partition_epoch + 1)


def shrink_isr(partition: PartitionInfo, remove: Iterable[int]) -> PartitionInfo:
    """The ISR without `remove` (the leader asked: followers too far behind), never emptied, never without the
    leader."""
    gone = set(remove) - {partition.leader}
    isr = tuple(r for r in partition.isr if r not in gone)
    return _changed(partition, isr=isr or partition.isr[:1])


def expand_isr(partition: PartitionInfo, add: Iterable[int]) -> PartitionInfo:
    """The ISR with `add` (followers that caught up), kept in replica order."""
    wanted = set(partition.isr) | (set(add) & set(partition.replicas))
    return _changed(partition, isr=tuple(r for r in partition.replicas if r in wanted))


def preferred_leader(partition: PartitionInfo, live: set[int]) -> PartitionInfo:
    """Leadership back to the first replica, if it is live and in the ISR."""
    preferred = partition.replicas[0] if partition.replicas else NO_LEADER
    if preferred == partition.leader or preferred not in live or preferred not in partition.isr:
        return partition
    return _changed(partition, leader=preferred)


def place_replicas(brokers: Mapping[int, str | None], partitions: int, replication_factor: int,
                   start: int = 0, first_partition: int = 0) -> list[tuple[int, ...]]:
    """Replica lists for new partitions, spread as Kafka spreads them: each partition's first replica goes
    round-robin over the brokers from `start`, its followers follow at a shift that grows every full round, so
    leaders and followers both spread evenly. With racks set on every broker, brokers are ordered alternating
    racks first, so a partition's replicas land on different racks wherever there are enough of them. Raises
    ValueError when the factor exceeds the broker count."""
    ids = sorted(brokers)
    n = len(ids)
    if replication_factor < 1 or replication_factor > n:
        raise ValueError(f"replication factor {replication_factor} is more than the {n} available broker(s)")
    rack_aware = all(brokers[b] is not None for b in ids) and len({brokers[b] for b in ids}) > 1
    if rack_aware:
        ids = _alternate_racks(ids, brokers)
    placed = []
    for p in range(first_partition, first_partition + partitions):
        first = (start + p) % n
        shift = start + p // n  # grows every full round, so followers do not always trail the same leader
        # The other brokers in the order this partition's followers are taken from.
        order = [ids[(first + 1 + (shift + j) % (n - 1)) % n] for j in range(n - 1)]
        replicas = [ids[first]]
        if rack_aware:  # first one broker of each rack not yet used, then the rest in order
            for b in order:
                if len(replicas) < replication_factor and brokers[b] not in {brokers[r] for r in replicas}:
                    replicas.append(b)
        replicas += [b for b in order if b not in replicas][:replication_factor - len(replicas)]
        placed.append(tuple(replicas))
    return placed


def _alternate_racks(ids: list[int], racks: Mapping[int, str | None]) -> list[int]:
    by_rack: dict[str, list[int]] = {}
    for b in ids:
        by_rack.setdefault(racks[b], []).append(b)
    order, lists = [], [by_rack[r] for r in sorted(by_rack)]
    for i in range(max(len(x) for x in lists)):
        order.extend(x[i] for x in lists if i < len(x))
    return order


def start_reassignment(partition: PartitionInfo, target: tuple[int, ...]) -> PartitionInfo:
    """Begin moving a partition to `target` (KIP-455): replicas = target then the old ones, the new ones marked
    adding and the old ones removing. Moving back to the current replicas cancels a move in progress."""
    current = partition.target if (partition.adding or partition.removing) else partition.replicas
    if tuple(target) == tuple(r for r in current):
        return _changed(partition, replicas=tuple(current), adding=(), removing=(),
                        isr=tuple(r for r in partition.isr if r in current) or partition.isr[:1])
    replicas = tuple(target) + tuple(r for r in partition.replicas if r not in target)
    return _changed(partition, replicas=replicas, adding=tuple(r for r in target if r not in partition.replicas),
                    removing=tuple(r for r in partition.replicas if r not in target))


def cancel_reassignment(partition: PartitionInfo) -> PartitionInfo:
    """Back to the replicas before the move: the ones being added are dropped."""
    original = tuple(r for r in partition.replicas if r not in partition.adding)
    return finish(partition, original)


def step_reassignment(partition: PartitionInfo, live: set[int]) -> PartitionInfo:
    """Once every replica being added is in the ISR, drop the ones being removed (electing a new leader if the
    current one leaves). Unchanged while the new replicas are still catching up."""
    if not (partition.adding or partition.removing) or not set(partition.adding) <= set(partition.isr):
        return partition
    return finish(partition, partition.target, live)


def finish(partition: PartitionInfo, replicas: tuple[int, ...], live: set[int] | None = None) -> PartitionInfo:
    isr = tuple(r for r in replicas if r in partition.isr)
    moved = replace(partition, replicas=tuple(replicas), isr=isr or partition.isr[:1], adding=(), removing=())
    if moved.leader not in replicas:
        candidates = live if live is not None else set(replicas)
        leader = next((r for r in replicas if r in isr and r in candidates), NO_LEADER)
        moved = replace(moved, leader=leader, leader_epoch=partition.leader_epoch + 1)
    return replace(moved, partition_epoch=partition.partition_epoch + 1)
