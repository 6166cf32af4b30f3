"""Loading and unloading `__consumer_offsets` partitions: groups and offsets rebuilt from their records."""

from __future__ import annotations

from typing import Iterable

from kafkalite.group import records as rec
from kafkalite.group.base import CoordinatorBase
from kafkalite.group.types import CommittedOffset, Effects, Group, GroupState, JoinResult, Member, SyncResult
from kafkalite.protocol.errors import DecodeError, ErrorCode


class Replay(CoordinatorBase):
    # ------------------------------------------------------------ persistence

    def begin_loading(self, partition: int) -> None:
        """The partition is being read: its groups get COORDINATOR_LOAD_IN_PROGRESS until `load_partition`."""
        if partition not in self.loaded_partitions:
            self.loading_partitions.add(partition)

    def load_partition(self, partition: int, records: Iterable[tuple[bytes | None, bytes | None]],
                       now_ms: int) -> Effects:
        """Serve the groups of one `__consumer_offsets` partition, rebuilt from its records in log order.

        Groups with members come back Stable, and each member gets a fresh session timeout to reconnect
        in. Other partitions' groups are untouched; this partition's are replaced if it was loaded
        already. Records that cannot be decoded, or of groups that belong to another partition, are skipped.
        """
        self._drop_partition(partition)
        metadata: dict[str, rec.GroupValue | None] = {}
        offsets: dict[str, dict[tuple[str, int], CommittedOffset]] = {}
        for key, value in records:
            if key is None:
                continue
            try:
                k = rec.decode_key(key)
                if isinstance(k, rec.OffsetKey):
                    group_offsets = offsets.setdefault(k.group_id, {})
                    if value is None:
                        group_offsets.pop((k.topic, k.partition), None)
                    else:
                        v = rec.decode_offset_value(value)
                        group_offsets[(k.topic, k.partition)] = CommittedOffset(
                            v.offset, v.leader_epoch, v.metadata, v.commit_timestamp_ms)
                elif isinstance(k, rec.GroupKey):
                    metadata[k.group_id] = None if value is None else rec.decode_group_value(value)
            except DecodeError:
                continue
        for group_id in sorted(set(metadata) | set(offsets)):
            if self.partition_for(group_id) != partition:
                continue
            group = Group(group_id, state_timestamp_ms=now_ms, offsets=offsets.get(group_id, {}))
            value = metadata.get(group_id)
            if value is not None:
                self._restore_metadata(group, value, now_ms)
            if value is None and not group.offsets:
                continue
            self.groups[group_id] = group
        self.loading_partitions.discard(partition)
        self.loaded_partitions.add(partition)
        return self._done()

    def unload_partition(self, partition: int) -> Effects:
        """Stop serving one partition's groups (its leadership moved away): they are dropped from memory, not
        deleted; parked JoinGroup and SyncGroup requests get NOT_COORDINATOR; their timers are void."""
        self._drop_partition(partition)
        self.loaded_partitions.discard(partition)
        self.loading_partitions.discard(partition)
        return self._done()

    def _drop_partition(self, partition: int) -> None:
        for group in [g for g in self.groups.values() if self.partition_for(g.group_id) == partition]:
            for m in group.members.values():
                if m.join_token is not None:
                    self._reply(m.join_token, JoinResult(ErrorCode.NOT_COORDINATOR, m.member_id))
                if m.sync_token is not None:
                    self._reply(m.sync_token, SyncResult(ErrorCode.NOT_COORDINATOR))
            del self.groups[group.group_id]
            self._fx.cancel_group_timers.append(group.group_id)

    def _restore_metadata(self, group: Group, value: rec.GroupValue, now: int) -> None:
        group.protocol_type = value.protocol_type or None
        group.generation_id = value.generation_id
        group.protocol_name = value.protocol_name
        group.leader_id = value.leader_id
        if value.state_timestamp_ms >= 0:
            group.state_timestamp_ms = value.state_timestamp_ms
        for mv in value.members:
            protocols = [(value.protocol_name, mv.subscription)] if value.protocol_name is not None else []
            member = Member(mv.member_id, mv.group_instance_id, mv.client_id, mv.client_host,
                            mv.session_timeout_ms, mv.rebalance_timeout_ms, group.protocol_type or "",
                            protocols, assignment=mv.assignment)
            group.members[mv.member_id] = member
            if mv.group_instance_id is not None:
                group.static_members[mv.group_instance_id] = mv.member_id
            self._touch(group, member, now)
        group.state = GroupState.STABLE if group.members else GroupState.EMPTY
        if group.leader_id not in group.members:
            group.leader_id = next(iter(group.members), None)
