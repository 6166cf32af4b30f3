"""One partition's replication state on its leader, as pure rules: the ISR, follower progress, the high watermark.

No I/O, no asyncio, no clock of its own: every call that depends on time takes `now_ms`. The replica manager
feeds it (the local log's end, follower fetches) and applies what it decides.

The rules, as Kafka's:
- The high watermark is the lowest end over the ISR, where the leader's own end is its durable end when the
  durability policy says acks=all waits for fsync (so a consumer never reads what a power cut can take back),
  else its log end. It never goes backwards while this leader's epoch lasts.
- A follower is caught up when its fetch offset reached the leader's log end; one not caught up for
  `replica.lag.time.max.ms` leaves the ISR, and one whose end reached the high watermark (within this epoch)
  joins it again. The ISR is never emptied: the leader stays in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class FollowerProgress:
    end_offset: int = -1  # the follower's log end (its fetch offset), -1 until its first fetch
    last_caught_up_ms: int = -1  # when its fetch offset last reached the leader's log end


@dataclass(slots=True)
class PartitionState:
    local_id: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader_epoch: int
    high_watermark: int = 0
    followers: dict[int, FollowerProgress] = field(default_factory=dict)

    @classmethod
    def leader(cls, local_id: int, replicas, isr, leader_epoch: int, high_watermark: int,
               now_ms: int) -> "PartitionState":
        """The state of a replica that has just become leader: followers count as caught up from now."""
        state = cls(local_id, tuple(replicas), tuple(isr), leader_epoch, high_watermark)
        for replica in state.replicas:
            if replica != local_id:
                state.followers[replica] = FollowerProgress(last_caught_up_ms=now_ms)
        return state

    def follower_fetched(self, replica: int, fetch_offset: int, leader_end: int, now_ms: int) -> None:
        """A follower's fetch at `fetch_offset` tells the leader its log end."""
        progress = self.followers.setdefault(replica, FollowerProgress(last_caught_up_ms=now_ms))
        progress.end_offset = fetch_offset
        if fetch_offset >= leader_end:
            progress.last_caught_up_ms = now_ms

    def next_high_watermark(self, local_end: int) -> int:
        """The high watermark the ISR allows, given the leader's own end (durable or log end, by policy)."""
        ends = [local_end]
        for replica in self.isr:
            if replica != self.local_id:
                progress = self.followers.get(replica)
                ends.append(progress.end_offset if progress is not None else -1)
        return max(self.high_watermark, min(ends))

    def advance(self, local_end: int) -> bool:
        """Move the high watermark as far as the ISR allows; True if it moved."""
        new = self.next_high_watermark(local_end)
        if new != self.high_watermark:
            self.high_watermark = new
            return True
        return False

    def lagging_followers(self, now_ms: int, max_lag_ms: int) -> list[int]:
        """ISR members (other than the leader) not caught up within `max_lag_ms`: candidates to shrink away."""
        out = []
        for replica in self.isr:
            if replica == self.local_id:
                continue
            progress = self.followers.get(replica)
            if progress is None or now_ms - progress.last_caught_up_ms > max_lag_ms:
                out.append(replica)
        return out

    def followers_to_add(self) -> list[int]:
        """Replicas outside the ISR whose end reached the high watermark: candidates to join it again."""
        return [
            replica for replica, progress in self.followers.items()
            if replica not in self.isr and replica in self.replicas and progress.end_offset >= self.high_watermark
        ]
