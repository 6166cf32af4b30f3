"""The consumer-group coordinator: a pure state machine (no I/O, no clock) and its persistence format."""

OFFSETS_TOPIC = "__consumer_offsets"

from kafkalite.group.config import GroupConfig  # noqa: E402
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
)

__all__ = [
    "OFFSETS_TOPIC",
    "CommitPlan", "CommittedOffset", "Effects", "GroupConfig", "GroupCoordinator", "GroupDescription",
    "GroupState", "JoinRequest", "JoinResult", "OffsetCommitRequest", "SyncRequest", "SyncResult",
]
