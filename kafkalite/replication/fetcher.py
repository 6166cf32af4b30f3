"""Followers copy their leaders with Kafka's own replication protocol: Fetch with a replica id.

One `FollowerFetcher` per leader broker fetches every partition this broker follows from it, in a loop: a
Fetch (v12: replica_id, current_leader_epoch, last_fetched_epoch) from each partition's log end; batches are
appended exactly as the leader stored them; a `diverging_epoch` answer truncates the log to where it parts
from the leader's and the loop goes on. Under durability=always the follower fsyncs what it fetched before it
asks for more, so the leader learns "fsynced here" from the next fetch offset: acks=all then means fsynced on
every ISR member. The follower's high watermark is min(the leader's, its own log end).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import TYPE_CHECKING

from kafkalite.log.errors import LogError, UnexpectedAppendOffset
from kafkalite.metadata.image import BrokerInfo
from kafkalite.protocol.api_keys import ApiKey
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.wire import decode_response, encode_request

if TYPE_CHECKING:
    from kafkalite.replication.replica_manager import Replica, ReplicaManager

log = logging.getLogger("kafkalite.fetcher")

FETCH_VERSION = 12
_SIZE = struct.Struct(">i")
# How long past max_wait a fetch answer may take before the connection is dropped and made again. Short, unlike
# Kafka's replica.socket.timeout.ms (30 s): after a network cut heals, a follower otherwise waits out TCP's
# retransmission backoff on the old connection (seconds) before it fetches again and rejoins the ISR; a leader
# too slow for this costs one reconnect, not the follower's place in the ISR (replica.lag.time.max.ms decides).
_ANSWER_GRACE_S = 2.0


class PeerConnection:
    """One connection to another broker, one request at a time (the fetch loop is sequential)."""

    def __init__(self, broker: BrokerInfo, client_id: str):
        self.broker = broker
        self.client_id = client_id
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._correlation = 0

    async def request(self, api_key: int, version: int, body: dict, timeout_s: float) -> dict:
        if self._writer is None:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.broker.host, self.broker.port), timeout_s)
        self._correlation += 1
        self._writer.writelines(encode_request(api_key, version, self._correlation, self.client_id, body))
        await self._writer.drain()
        size = _SIZE.unpack(await asyncio.wait_for(self._reader.readexactly(4), timeout_s))[0]
        frame = await asyncio.wait_for(self._reader.readexactly(size), timeout_s)
        correlation, response = decode_response(api_key, version, memoryview(frame))
        if correlation != self._correlation:
            raise ConnectionError(f"response {correlation} to request {self._correlation}")
        return response

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class FollowerFetcher:
    def __init__(self, manager: "ReplicaManager", leader: BrokerInfo, *, max_wait_ms: int = 500,
                 max_bytes: int = 10 << 20, partition_max_bytes: int = 1 << 20, retry_ms: int = 200):
        self.manager = manager
        self.leader = leader
        self.max_wait_ms = max_wait_ms
        self.max_bytes = max_bytes
        self.partition_max_bytes = partition_max_bytes
        self.retry_ms = retry_ms
        self.partitions: dict[tuple[str, int], "Replica"] = {}
        self._connection = PeerConnection(leader, f"kafkalite-follower-{manager.node_id}")
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    def add(self, replica: "Replica") -> None:
        self.partitions[(replica.topic, replica.index)] = replica
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"fetch-from-{self.leader.node_id}")

    def remove(self, topic: str, index: int) -> None:
        self.partitions.pop((topic, index), None)

    async def stop(self) -> None:
        self._stopping = True  # also ends the loop where a cancellation is lost (asyncio.wait_for in 3.11 can
        if self._task is not None:  # swallow one that arrives as its inner call completes)
            self._task.cancel()
            self._wake.set()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._connection.close()

    async def _run(self) -> None:
        while not self._stopping:
            if not self.partitions:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self.fetch_once()
            except (OSError, ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                log.info("fetching from broker %d failed: %s; retrying", self.leader.node_id, e)
                self._connection.close()
                await asyncio.sleep(self.retry_ms / 1000)  # a reconnect pace, not a wait for an event

    async def fetch_once(self) -> None:
        """One Fetch round trip for every partition followed from this leader."""
        wanted = list(self.partitions.values())
        topics: dict[str, list] = {}
        for replica in wanted:
            plog = replica.log
            topics.setdefault(replica.topic, []).append({
                "partition": replica.index, "current_leader_epoch": replica.leader_epoch,
                "fetch_offset": plog.log_end_offset, "last_fetched_epoch": plog.latest_epoch,
                "log_start_offset": plog.log_start_offset, "partition_max_bytes": self.partition_max_bytes,
            })
        request = {
            "replica_id": self.manager.node_id, "max_wait_ms": self.max_wait_ms, "min_bytes": 1,
            "max_bytes": self.max_bytes, "isolation_level": 0, "session_id": 0, "session_epoch": -1,
            "topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()], "forgotten_topics_data": [],
            "rack_id": "",
        }
        response = await self._connection.request(ApiKey.FETCH, FETCH_VERSION, request,
                                                  timeout_s=self.max_wait_ms / 1000 + _ANSWER_GRACE_S)
        fetched = []
        for topic in response["responses"]:
            for part in topic["partitions"]:
                replica = self.partitions.get((topic["topic"], part["partition_index"]))
                if replica is not None and replica.log_end is not None:
                    if self._take(replica, part):
                        fetched.append(replica)
        # Durable before the next fetch tells the leader this offset: acks=all = fsynced on every ISR member. The
        # partitions' fsyncs run side by side (one hand-over to the fsync threads each, all awaited together).
        unsynced = [replica.log for replica in fetched if replica.log.config.acks_all_waits_for_fsync
                    and replica.log.flushed_offset < replica.log.log_end_offset]
        if unsynced:
            await asyncio.gather(*(self.manager.fsync_threads.run(plog.flush) for plog in unsynced))
        if not fetched and all(p["error_code"] for t in response["responses"] for p in t["partitions"]):
            await asyncio.sleep(self.retry_ms / 1000)  # every partition refused: wait for new metadata

    def _take(self, replica: "Replica", part: dict) -> bool:
        """Apply one partition's answer; True if records were appended."""
        plog = replica.log
        code = part["error_code"]
        if code != ErrorCode.NONE:
            if code == ErrorCode.OFFSET_OUT_OF_RANGE and plog.log_end_offset > part["high_watermark"] >= 0:
                plog.truncate_to(part["high_watermark"])  # ahead of a new leader that never had our tail
            elif code not in (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.FENCED_LEADER_EPOCH,
                              ErrorCode.UNKNOWN_LEADER_EPOCH, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION):
                log.warning("%s-%d: fetch from broker %d: %s", replica.topic, replica.index, self.leader.node_id,
                            ErrorCode(code).name)
            return False
        diverging = part["diverging_epoch"]
        if diverging["epoch"] >= 0 or diverging["end_offset"] >= 0:
            # As Kafka's follower: cut where the leader's epoch ends, or earlier where our own copy of that epoch
            # ends (a later epoch of ours that the leader never had starts there, even below the leader's end).
            own_epoch, own_end = plog.epoch_end_offset(diverging["epoch"])
            end = diverging["end_offset"] if own_epoch < 0 else min(diverging["end_offset"], own_end)
            end = min(end, plog.log_end_offset)
            log.info("%s-%d: diverges from the leader at epoch %d; truncating to %d", replica.topic, replica.index,
                     diverging["epoch"], end)
            plog.truncate_to(end)
            self.manager.follower_progressed(replica, part["high_watermark"])
            return False
        appended = False
        records = part["records"]
        if records:
            try:
                plog.append_as_follower(records)
                appended = True
            except UnexpectedAppendOffset:
                pass  # a stale answer: the next fetch asks from the log end
            except LogError as e:
                log.error("%s-%d: cannot store what the leader sent: %s", replica.topic, replica.index, e)
        self.manager.follower_progressed(replica, part["high_watermark"])
        return appended
