"""Partition assignors: the group leader runs one to split partitions among members.

Names are the ones the Java client, librdkafka and aiokafka use on the wire ("range", "roundrobin",
"cooperative-sticky"), so the broker can find a protocol common to mixed groups.
"""

from __future__ import annotations

from collections import defaultdict

from kafkalite_client.consumer_protocol import Subscription

Assignments = dict[str, dict[str, list[int]]]  # member id -> topic -> partitions


class Assignor:
    name: str = ""
    rebalance_protocol = "eager"  # or "cooperative": members keep their partitions across a rebalance

    def assign(self, members: dict[str, Subscription], partition_counts: dict[str, int]) -> Assignments:
        raise NotImplementedError

    def user_data(self) -> bytes | None:
        return None


def _empty(members) -> Assignments:
    return {m: {} for m in members}


def _add(out: Assignments, member: str, topic: str, partition: int) -> None:
    out[member].setdefault(topic, []).append(partition)


class RangeAssignor(Assignor):
    """Per topic, consecutive ranges of partitions to members sorted by id; the first ones get one extra."""

    name = "range"

    def assign(self, members, partition_counts):
        out = _empty(members)
        by_topic: dict[str, list[str]] = defaultdict(list)
        for member_id, sub in members.items():
            for topic in sub.topics:
                by_topic[topic].append(member_id)
        for topic, subscribers in by_topic.items():
            count = partition_counts.get(topic, 0)
            subscribers.sort()
            per_member, extra = divmod(count, len(subscribers))
            start = 0
            for i, member_id in enumerate(subscribers):
                n = per_member + (1 if i < extra else 0)
                for p in range(start, start + n):
                    _add(out, member_id, topic, p)
                start += n
        return out


class RoundRobinAssignor(Assignor):
    """All partitions sorted by topic and number, dealt to members in id order, skipping members that do not
    subscribe to the partition's topic."""

    name = "roundrobin"

    def assign(self, members, partition_counts):
        out = _empty(members)
        ring = sorted(members)
        if not ring:
            return out
        subscribed = {m: set(members[m].topics) for m in ring}
        topics = sorted({t for sub in members.values() for t in sub.topics})
        i = 0
        for topic in topics:
            for p in range(partition_counts.get(topic, 0)):
                for _ in range(len(ring)):
                    member_id = ring[i % len(ring)]
                    i += 1
                    if topic in subscribed[member_id]:
                        _add(out, member_id, topic, p)
                        break
        return out


class CooperativeStickyAssignor(Assignor):
    """Balanced, and keeps each member's owned partitions where balance allows. Incremental (KIP-429): a
    partition moving between members is left out this round; its old owner revokes it and rejoins, and the
    next round gives it to the new owner."""

    name = "cooperative-sticky"
    rebalance_protocol = "cooperative"

    def assign(self, members, partition_counts):
        subscribed = {m: set(sub.topics) for m, sub in members.items()}
        all_partitions = sorted((t, p) for t in {t for s in subscribed.values() for t in s}
                                for p in range(partition_counts.get(t, 0)))
        existing = set(all_partitions)
        # Previous owners, ignoring claims that are stale (gone, unsubscribed) or disputed.
        claims: dict[tuple[str, int], list[str]] = defaultdict(list)
        for m, sub in members.items():
            for topic, parts in sub.owned_partitions.items():
                for p in parts:
                    if (topic, p) in existing and topic in subscribed[m]:
                        claims[(topic, p)].append(m)
        previous = {tp: owners[0] for tp, owners in claims.items() if len(owners) == 1}

        owned: dict[str, set] = {m: set() for m in members}
        for tp, m in previous.items():
            owned[m].add(tp)
        unassigned = [tp for tp in all_partitions if tp not in previous]

        def eligible(tp):
            return [m for m in sorted(members) if tp[0] in subscribed[m]]

        for tp in unassigned:
            candidates = eligible(tp)
            if candidates:
                owned[min(candidates, key=lambda m: len(owned[m]))].add(tp)
        # Move partitions from the fullest members to the emptiest eligible ones until balanced.
        moved = True
        while moved:
            moved = False
            for m in sorted(members, key=lambda m: -len(owned[m])):
                for tp in sorted(owned[m]):
                    target = min(eligible(tp), key=lambda x: len(owned[x]))
                    if len(owned[target]) + 1 < len(owned[m]):
                        owned[m].discard(tp)
                        owned[target].add(tp)
                        moved = True
                        break
                if moved:
                    break

        out = _empty(members)
        for m, tps in owned.items():
            for tp in sorted(tps):
                old = previous.get(tp)
                if old is not None and old != m:
                    continue  # revoked this round, assigned next round
                _add(out, m, *tp)
        return out


ASSIGNORS: dict[str, type[Assignor]] = {
    cls.name: cls for cls in (RangeAssignor, RoundRobinAssignor, CooperativeStickyAssignor)
}


def make_assignors(strategies) -> list[Assignor]:
    """Assignor names or instances, in order of preference."""
    out = []
    for s in strategies:
        if isinstance(s, Assignor):
            out.append(s)
        elif s in ASSIGNORS:
            out.append(ASSIGNORS[s]())
        else:
            raise ValueError(f"unknown partition assignment strategy {s!r}; known: {', '.join(ASSIGNORS)}")
    if not out:
        raise ValueError("at least one partition assignment strategy is needed")
    return out
