"""Consumer group membership: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, and the offset
APIs (OffsetCommit, OffsetFetch) that go to the same coordinator.

The membership task runs in the background: it joins, hands assignments to the consumer through two
callbacks, heartbeats, and rejoins whenever the coordinator starts a rebalance. The consumer's own work
(fetching, the user's handler) never blocks heartbeats.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from kafkalite.protocol.api_keys import ApiKey
from kafkalite.protocol.errors import ErrorCode

from kafkalite_client._aio import wait_event
from kafkalite_client.assignors import Assignor
from kafkalite_client.cluster import Cluster
from kafkalite_client.consumer_protocol import (
    PROTOCOL_TYPE,
    Assignment,
    Subscription,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)
from kafkalite_client.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    error_class,
    raise_for_code,
)
from kafkalite_client.records import OffsetAndMetadata, TopicPartition

log = logging.getLogger(__name__)

OFFSET_COMMIT, OFFSET_FETCH, JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = (
    ApiKey.OFFSET_COMMIT, ApiKey.OFFSET_FETCH, ApiKey.JOIN_GROUP, ApiKey.HEARTBEAT, ApiKey.LEAVE_GROUP,
    ApiKey.SYNC_GROUP)

_COORDINATOR_MOVED = {ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE,
                      ErrorCode.COORDINATOR_LOAD_IN_PROGRESS}
_MEMBER_GONE = {ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.ILLEGAL_GENERATION}

Partitions = set[TopicPartition]


class GroupCoordinatorClient:
    """Talks to a group's coordinator. `member_id` and `generation` are valid while `stable` is set."""

    def __init__(self, cluster: Cluster, group_id: str, *, assignors: list[Assignor],
                 session_timeout_ms: int, rebalance_timeout_ms: int, heartbeat_interval_ms: int,
                 group_instance_id: str | None = None, retry_backoff_ms: int = 100,
                 metadata_check_interval_ms: int = 5000):
        self.cluster = cluster
        self.group_id = group_id
        self.assignors = assignors
        self.session_timeout_ms = session_timeout_ms
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.heartbeat_interval = heartbeat_interval_ms / 1000
        self.group_instance_id = group_instance_id
        self.retry_backoff = retry_backoff_ms / 1000
        self.metadata_check_interval = metadata_check_interval_ms / 1000
        self.member_id = ""
        self.generation = -1
        self.protocol_name: str | None = None
        self.stable = asyncio.Event()
        self._rejoin = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._joined_partition_counts: dict[str, int] = {}
        # Set by the consumer.
        self.topics: set[str] = set()
        # A pattern subscription: refreshes metadata and returns the topics to subscribe now.
        self.topics_source: Callable[[], Awaitable[set[str]]] | None = None
        self.owned: Callable[[], Partitions] = set
        self.on_revoke: Callable[[Partitions], Awaitable[None]] | None = None
        self.on_assign: Callable[[Partitions], Awaitable[None]] | None = None
        self.fatal_error: BaseException | None = None

    @property
    def cooperative(self) -> bool:
        chosen = next((a for a in self.assignors if a.name == self.protocol_name), None)
        return chosen is not None and chosen.rebalance_protocol == "cooperative"

    # Requests to the coordinator -------------------------------------------------------------

    async def _request(self, api_key: int, body: dict, **kwargs) -> dict:
        node = await self.cluster.coordinator(self.group_id)
        try:
            return await self.cluster.request(node, api_key, body, **kwargs)
        except (KafkaConnectionError, KafkaTimeoutError):
            self.cluster.forget_coordinator(self.group_id)
            raise

    def _coordinator_error(self, code: int) -> bool:
        if code in _COORDINATOR_MOVED:
            self.cluster.forget_coordinator(self.group_id)
            return True
        return False

    # Membership ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def request_rejoin(self) -> None:
        self._rejoin.set()

    async def _run(self) -> None:
        first = True
        failures = 0
        while True:
            try:
                if not first:
                    await self._before_join()
                first = False
                self.stable.clear()
                await self._join_and_sync()
                self.stable.set()
                await self._heartbeat_until_rebalance()
            except asyncio.CancelledError:
                raise
            except (KafkaError, KafkaConnectionError, KafkaTimeoutError) as e:
                if isinstance(e, KafkaError) and not e.retriable and e.code not in _MEMBER_GONE \
                        and e.code not in _COORDINATOR_MOVED and e.code != ErrorCode.REBALANCE_IN_PROGRESS:
                    log.error("group %s: %s", self.group_id, e)
                    self.fatal_error = e
                    self.stable.set()  # wake waiters so they see the error
                    return
                log.info("group %s: rejoining after %s", self.group_id, e)
                failures += 1
                await asyncio.sleep(min(self.retry_backoff * 2 ** min(failures, 10), 2.0))
                continue
            except Exception as e:  # a failing callback must not kill membership silently
                log.exception("group %s: membership task failed", self.group_id)
                self.fatal_error = e
                self.stable.set()
                return
            failures = 0

    async def _before_join(self) -> None:
        if not self.cooperative and self.on_revoke is not None:
            owned = self.owned()
            if owned:
                await self.on_revoke(owned)

    def _metadata(self, assignor: Assignor) -> bytes:
        owned: dict[str, list[int]] = {}
        for tp in self.owned():
            owned.setdefault(tp.topic, []).append(tp.partition)
        return encode_subscription(Subscription(sorted(self.topics), assignor.user_data(), owned,
                                                generation_id=self.generation))

    async def _join_and_sync(self) -> None:
        while True:
            self._rejoin.clear()
            body = {
                "group_id": self.group_id, "session_timeout_ms": self.session_timeout_ms,
                "rebalance_timeout_ms": self.rebalance_timeout_ms, "member_id": self.member_id,
                "group_instance_id": self.group_instance_id, "protocol_type": PROTOCOL_TYPE,
                "protocols": [{"name": a.name, "metadata": self._metadata(a)} for a in self.assignors],
            }
            response = await self._request(JOIN_GROUP, body, timeout=self.rebalance_timeout_ms / 1000 + 5)
            code = response["error_code"]
            if code == ErrorCode.MEMBER_ID_REQUIRED:
                self.member_id = response["member_id"]  # KIP-394: join again with the id the broker gave
                continue
            if code in (ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.ILLEGAL_GENERATION):
                self.member_id, self.generation = "", -1
                continue
            if code == ErrorCode.REBALANCE_IN_PROGRESS or self._coordinator_error(code):
                await asyncio.sleep(self.retry_backoff)
                continue
            raise_for_code(code, f"joining group {self.group_id!r}")
            self.member_id = response["member_id"]
            self.generation = response["generation_id"]
            self.protocol_name = response["protocol_name"]
            assignments = []
            if response["leader"] == self.member_id:
                assignments = await self._lead(response["members"])
            sync = await self._request(SYNC_GROUP, {
                "group_id": self.group_id, "generation_id": self.generation, "member_id": self.member_id,
                "group_instance_id": self.group_instance_id, "protocol_type": PROTOCOL_TYPE,
                "protocol_name": self.protocol_name, "assignments": assignments,
            }, timeout=self.rebalance_timeout_ms / 1000 + 5)
            code = sync["error_code"]
            if code in (ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.ILLEGAL_GENERATION):
                self.member_id, self.generation = "", -1
                continue
            if code == ErrorCode.REBALANCE_IN_PROGRESS or self._coordinator_error(code):
                continue
            raise_for_code(code, f"syncing group {self.group_id!r}")
            assignment = decode_assignment(sync["assignment"])
            await self._apply(assignment)
            if not self._rejoin.is_set():
                return

    async def _lead(self, members: list[dict]) -> list[dict]:
        assignor = next((a for a in self.assignors if a.name == self.protocol_name), None)
        if assignor is None:
            raise error_class(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)(
                f"the coordinator chose protocol {self.protocol_name!r}, which this consumer does not have")
        subscriptions = {m["member_id"]: decode_subscription(m["metadata"]) for m in members}
        topics = sorted({t for s in subscriptions.values() for t in s.topics})
        if topics:
            await self.cluster.refresh(topics)
        counts = {t: len(self.cluster.topics[t].partitions) for t in topics if t in self.cluster.topics}
        result = assignor.assign(subscriptions, counts)
        log.info("group %s generation %d: leader assigned %s", self.group_id, self.generation, result)
        return [{"member_id": m, "assignment": encode_assignment(Assignment(result.get(m, {})))}
                for m in subscriptions]

    async def _apply(self, assignment: Assignment) -> None:
        new = {TopicPartition(t, p) for t, parts in assignment.partitions.items() for p in parts}
        self._joined_partition_counts = {t: len(self.cluster.topics[t].partitions)
                                         for t in self.topics if t in self.cluster.topics}
        owned = self.owned()
        if self.cooperative:
            revoked = owned - new
            if revoked and self.on_revoke is not None:
                await self.on_revoke(revoked)
            if revoked:
                self._rejoin.set()  # KIP-429: give them up, then let the group hand them on
            added = new - owned
        else:
            added = new
        if self.on_assign is not None:
            await self.on_assign(added)

    async def _heartbeat_until_rebalance(self) -> None:
        loop = asyncio.get_running_loop()
        next_metadata_check = loop.time() + self.metadata_check_interval
        while True:
            if await wait_event(self._rejoin, self.heartbeat_interval):
                return  # the consumer asked to rejoin (subscription changed)
            response = await self._request(HEARTBEAT, {
                "group_id": self.group_id, "generation_id": self.generation, "member_id": self.member_id,
                "group_instance_id": self.group_instance_id})
            code = response["error_code"]
            if code == ErrorCode.REBALANCE_IN_PROGRESS:
                return
            if code in (ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.ILLEGAL_GENERATION):
                self.member_id, self.generation = "", -1
                return
            if self._coordinator_error(code):
                continue
            raise_for_code(code, f"heartbeat in group {self.group_id!r}")
            if loop.time() >= next_metadata_check and (self.topics or self.topics_source is not None):
                next_metadata_check = loop.time() + self.metadata_check_interval
                if await self._partitions_changed():
                    return

    async def _partitions_changed(self) -> bool:
        """A subscribed topic appeared or gained partitions, or the topics a pattern matches changed: the group
        must reassign."""
        try:
            if self.topics_source is not None:
                topics = await self.topics_source()
                if topics != self.topics:
                    log.info("group %s: the subscribed pattern now matches %s", self.group_id, sorted(topics))
                    self.topics = topics
                    return True
            else:
                await self.cluster.refresh(sorted(self.topics))
        except (KafkaError, KafkaConnectionError, KafkaTimeoutError):
            return False
        now = {t: len(self.cluster.topics[t].partitions) for t in self.topics if t in self.cluster.topics}
        return now != self._joined_partition_counts

    async def stop(self, leave: bool = True) -> None:
        if self._task is not None:
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait([self._task], timeout=1)
            self._task = None
        if leave and self.member_id:
            try:
                await self._request(LEAVE_GROUP, {"group_id": self.group_id, "member_id": self.member_id,
                                                  "members": [{"member_id": self.member_id,
                                                               "group_instance_id": self.group_instance_id}]},
                                    timeout=5)
            except (KafkaError, KafkaConnectionError, KafkaTimeoutError) as e:
                log.info("group %s: LeaveGroup failed: %s", self.group_id, e)
        self.member_id, self.generation = "", -1
        self.stable.clear()

    # Offsets ------------------------------------------------------------------------------

    async def commit(self, offsets: dict[TopicPartition, int], *, as_member: bool = True) -> None:
        """Commit offsets (the next offset to read; an OffsetAndMetadata carries its metadata string).
        Raises the first partition's error, if any."""
        if not offsets:
            return
        topics: dict[str, list[dict]] = {}
        for tp, offset in offsets.items():
            topics.setdefault(tp.topic, []).append({"partition_index": tp.partition, "committed_offset": int(offset),
                                                    "committed_leader_epoch": -1,
                                                    "committed_metadata": getattr(offset, "metadata", "")})
        body = {"group_id": self.group_id,
                "generation_id_or_member_epoch": self.generation if as_member else -1,
                "member_id": self.member_id if as_member else "",
                "group_instance_id": self.group_instance_id if as_member else None,
                "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()]}
        for attempt in range(5):
            response = await self._request(OFFSET_COMMIT, body)
            codes = [p["error_code"] for t in response["topics"] for p in t["partitions"] if p["error_code"]]
            if not codes:
                return
            if any(self._coordinator_error(c) for c in codes) and attempt < 4:
                await asyncio.sleep(self.retry_backoff)
                continue
            if ErrorCode.REBALANCE_IN_PROGRESS in codes or any(c in _MEMBER_GONE for c in codes):
                self._rejoin.set()
            raise_for_code(codes[0], f"committing offsets for group {self.group_id!r}")

    async def fetch_committed(self, partitions) -> dict[TopicPartition, OffsetAndMetadata]:
        """Committed offsets (-1 where none) for these partitions."""
        return await fetch_committed(self.cluster, self.group_id, partitions)


async def fetch_committed(cluster: Cluster, group_id: str, partitions=None) -> dict[TopicPartition, OffsetAndMetadata]:
    """OffsetFetch for one group: these partitions, or every partition with a committed offset (None).
    Offsets come with their metadata; -1 where nothing is committed."""
    topics = None
    if partitions is not None:
        by_topic: dict[str, list[int]] = {}
        for tp in partitions:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        topics = [{"name": t, "partition_indexes": sorted(ps)} for t, ps in by_topic.items()]
    for attempt in range(5):
        node = await cluster.coordinator(group_id)
        conn = await cluster.connection(node)
        version = conn.version(OFFSET_FETCH)
        if version >= 8:
            response = await conn.request(OFFSET_FETCH, {"groups": [{"group_id": group_id, "topics": topics}]})
            group = response["groups"][0]
            code, result_topics = group["error_code"], group["topics"]
        else:
            response = await conn.request(OFFSET_FETCH, {"group_id": group_id, "topics": topics})
            code, result_topics = response["error_code"], response["topics"]
        if code in _COORDINATOR_MOVED and attempt < 4:
            cluster.forget_coordinator(group_id)
            await asyncio.sleep(0.1)
            continue
        raise_for_code(code, f"fetching committed offsets of group {group_id!r}")
        out = {}
        for t in result_topics:
            for p in t["partitions"]:
                raise_for_code(p["error_code"], f"fetching the committed offset of {t['name']}-{p['partition_index']}")
                out[TopicPartition(t["name"], p["partition_index"])] = OffsetAndMetadata(
                    p["committed_offset"], p["metadata"])
        return out
    raise KafkaTimeoutError(f"no coordinator answered for group {group_id!r}")
