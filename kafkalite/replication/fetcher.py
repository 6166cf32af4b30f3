"""Followers copy their leaders with Kafka's own replication protocol: Fetch with a replica id.

One `FollowerFetcher` per leader broker fetches every partition this broker follows from it, in a loop: a
Fetch (v12: replica_id, current_leader_epoch, last_fetched_epoch) from each partition's log end; batches are
appended exactly as the leader stored them; a `diverging_epoch` answer truncates the log to where it parts
from the leader's and the loop goes on. Under durability=always the follower fsyncs what it fetched before it
asks for more, so the leader learns "fsynced here" from the next fetch offset: acks=all then means fsynced on
every ISR member. The follower's high watermark is min(the leader's, its own log end).

The fetches use an incremental fetch session (KIP-227): after the first, a fetch names only the partitions
whose position changed, and the leader answers only those with something new, so the many idle partitions
of a cluster (__consumer_offsets has 50) cost no encoding on either side. A partition the leader refuses is
left out for retry_ms, or until new metadata for it arrives.
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
from kafkalite.protocol.fetch_sessions import INITIAL_EPOCH, next_epoch
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


class FetchSessionState:
    """The follower's side of an incremental fetch session (KIP-227, broker/fetch_sessions.py the leader's): the
    first fetch is full and opens the session; each later one sends only the partitions whose fetch position
    changed since the last, and names those no longer followed, so idle partitions cost no encoding."""

    __slots__ = ("id", "epoch", "_sent")

    def __init__(self):
        self.id = 0
        self.epoch = INITIAL_EPOCH  # the epoch the next fetch carries: 0 = full, opening a session
        self._sent: dict[tuple[str, int], dict] = {}  # each partition as the session on the leader holds it

    def changes(self, wanted: dict) -> tuple[dict, list]:
        """The partitions to send and the (topic, index) of those to forget, for the next fetch of `wanted`."""
        if self.epoch == INITIAL_EPOCH:
            return wanted, []
        sent = self._sent
        send = {key: part for key, part in wanted.items() if sent.get(key) != part}
        return send, [key for key in sent if key not in wanted]

    def answered(self, session_id: int, wanted: dict) -> None:
        """A fetch of `wanted` was answered without error, with this session id (0: the leader opened none)."""
        if self.epoch == INITIAL_EPOCH and session_id == 0:
            self.id = 0  # the leader keeps no session for us: every fetch stays full
            return
        self.id = session_id
        self.epoch = next_epoch(self.epoch)
        self._sent = wanted

    def reset(self) -> None:
        """The next fetch is full again and opens a new session (closing the old one on the leader)."""
        self.epoch = INITIAL_EPOCH
        self._sent = {}


def _by_topic(entries) -> list:
    """(topic, item) pairs as a request's topic list: [{"topic": t, "partitions": [item, ...]}, ...]."""
    topics: dict[str, list] = {}
    for topic, item in entries:
        topics.setdefault(topic, []).append(item)
    return [{"topic": t, "partitions": items} for t, items in topics.items()]


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
        self.session = FetchSessionState()
        # partitions the leader refused (not its leader any more, a stale epoch...): left out of the fetches until
        # this loop time or new metadata for them, so that a refusal, answered at once, does not spin the loop
        self._paused: dict[tuple[str, int], float] = {}
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    def add(self, replica: "Replica") -> None:
        self.partitions[(replica.topic, replica.index)] = replica
        self._paused.pop((replica.topic, replica.index), None)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"fetch-from-{self.leader.node_id}")

    def remove(self, topic: str, index: int) -> None:
        self.partitions.pop((topic, index), None)
        self._paused.pop((topic, index), None)

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
        """One Fetch round trip for every partition followed from this leader (and not paused)."""
        if self._paused:
            now = asyncio.get_running_loop().time()
            self._paused = {key: until for key, until in self._paused.items() if until > now}
            if len(self._paused) == len(self.partitions):
                await self._wait_for_metadata(min(self._paused.values()) - now)
                return
        wanted = {}
        for key, replica in self.partitions.items():
            if key in self._paused:
                continue
            plog = replica.log
            wanted[key] = {
                "partition": replica.index, "current_leader_epoch": replica.leader_epoch,
                "fetch_offset": plog.log_end_offset, "last_fetched_epoch": plog.latest_epoch,
                "log_start_offset": plog.log_start_offset, "partition_max_bytes": self.partition_max_bytes,
            }
        session = self.session
        send, forgotten = session.changes(wanted)
        request = {
            "replica_id": self.manager.node_id, "max_wait_ms": self.max_wait_ms, "min_bytes": 1,
            "max_bytes": self.max_bytes, "isolation_level": 0, "session_id": session.id,
            "session_epoch": session.epoch, "topics": _by_topic((key[0], part) for key, part in send.items()),
            "forgotten_topics_data": _by_topic(forgotten), "rack_id": "",
        }
        try:
            response = await self._connection.request(ApiKey.FETCH, FETCH_VERSION, request,
                                                      timeout_s=self.max_wait_ms / 1000 + _ANSWER_GRACE_S)
        except BaseException:
            session.reset()  # whether the leader saw this epoch is unknown: open a new session
            raise
        if response["error_code"] != ErrorCode.NONE:
            log.info("fetch session with broker %d: %s; opening a new one", self.leader.node_id,
                     ErrorCode(response["error_code"]).name)
            session.reset()
            return
        session.answered(response["session_id"], wanted)
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

    async def _wait_for_metadata(self, timeout_s: float) -> None:
        """Every partition is paused: wait until one is added again or the first pause ends."""
        self._wake.clear()
        try:
            async with asyncio.timeout(timeout_s):
                await self._wake.wait()
        except TimeoutError:
            pass

    def _take(self, replica: "Replica", part: dict) -> bool:
        """Apply one partition's answer; True if records were appended."""
        plog = replica.log
        code = part["error_code"]
        if code != ErrorCode.NONE:
            if code == ErrorCode.OFFSET_OUT_OF_RANGE and plog.log_end_offset > part["high_watermark"] >= 0:
                plog.truncate_to(part["high_watermark"])  # ahead of a new leader that never had our tail
                return False
            self._paused[(replica.topic, replica.index)] = asyncio.get_running_loop().time() + self.retry_ms / 1000
            if code not in (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.FENCED_LEADER_EPOCH,
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
