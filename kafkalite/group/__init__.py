"""The consumer-group coordinator: a pure state machine (no I/O, no clock) and its persistence format.

coordinator.py is the facade over types.py, membership.py, offsets.py and replay.py; records.py maps the
__consumer_offsets records; ports.py is what the asyncio shell (kafkalite.broker.groups) needs from the broker.
"""

from kafkalite.group.config import GroupConfig
from kafkalite.group.coordinator import (
    CommitPlan,
    CommittedOffset,
    Effects,
    GroupCoordinator,
    GroupDescription,
    GroupState,
    JoinRequest,
    JoinResult,
    OffsetCommitRequest,
    SyncRequest,
    SyncResult,
    TimerKey,
    TimerKind,
)
from kafkalite.group.records import partition_for

# The internal topic that holds committed offsets and group metadata; a group lives in its partition
# partition_for(group id, partition count).
OFFSETS_TOPIC = "__consumer_offsets"

__all__ = [
    "OFFSETS_TOPIC",
    "CommitPlan", "CommittedOffset", "Effects", "GroupConfig", "GroupCoordinator", "GroupDescription",
    "GroupState", "JoinRequest", "JoinResult", "OFFSETS_TOPIC", "OffsetCommitRequest", "SyncRequest", "SyncResult",
    "TimerKey", "TimerKind", "partition_for",
]
