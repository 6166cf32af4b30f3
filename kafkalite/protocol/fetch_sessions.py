"""Fetch session epochs (KIP-227), as both ends of a session count them."""

INITIAL_EPOCH = 0  # a full fetch that opens a session
FINAL_EPOCH = -1  # a full fetch without a session (closing the one named)


def next_epoch(epoch: int) -> int:
    """The epoch after `epoch`: 1, 2, ..., wrapping past the largest int32 to 1."""
    return 1 if epoch >= 0x7FFFFFFF else epoch + 1
