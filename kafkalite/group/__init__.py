"""The consumer-group coordinator: a pure state machine (no I/O, no clock) and its persistence format."""

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
)

__all__ = [
    "CommitPlan", "CommittedOffset", "Effects", "GroupConfig", "GroupCoordinator", "GroupDescription",
    "GroupState", "JoinRequest", "JoinResult", "OffsetCommitRequest", "SyncRequest", "SyncResult",
]
