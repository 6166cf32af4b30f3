"""What the client knows about the cluster: brokers, topics, partition leaders and group coordinators,
plus one connection per broker node, opened on first use and reopened after it breaks."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from kafkalite.protocol.api_keys import ApiKey
from kafkalite.protocol.errors import ErrorCode

from kafkalite_client.connection import Connection
from kafkalite_client.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    UnknownTopicOrPartitionError,
    error_class,
    raise_for_code,
)

METADATA, FIND_COORDINATOR = ApiKey.METADATA, ApiKey.FIND_COORDINATOR
BOOTSTRAP = -1  # the connection key of the bootstrap connection, before node ids are known
GROUP_KEY, TRANSACTION_KEY = 0, 1  # FindCoordinator's key types


def parse_bootstrap(servers: str | list[str] | tuple[str, ...]) -> list[tuple[str, int]]:
    """'host:port,host2:port2' or a list of 'host:port' to (host, port) pairs; the port defaults to 9092."""
    if isinstance(servers, str):
        servers = servers.split(",")
    out = []
    for server in servers:
        server = server.strip()
        if not server:
            continue
        host, sep, port = server.rpartition(":")
        if not sep:
            host, port = server, "9092"
        out.append((host.strip("[]"), int(port)))
    if not out:
        raise ValueError("bootstrap_servers is empty")
    return out


def _refusal(topic: str, code: int) -> str:
    if code == ErrorCode.INVALID_TOPIC_EXCEPTION:
        return (f"{topic!r} is not a valid topic name: use at most 249 ASCII letters, digits, '.', '_' "
                "and '-' (and not '.' or '..')")
    return f"the broker refused the metadata of topic {topic!r}"


@dataclass(slots=True)
class PartitionInfo:
    partition: int
    leader: int
    leader_epoch: int
    replicas: list[int]
    isr: list[int]
    error_code: int = 0


@dataclass(slots=True)
class TopicInfo:
    name: str
    partitions: dict[int, PartitionInfo] = field(default_factory=dict)
    is_internal: bool = False
    error_code: int = 0
    available: list[int] = field(default_factory=list)  # partitions with a known leader


class Cluster:
    def __init__(self, bootstrap_servers, *, client_id: str | None = "kafkalite-client",
                 request_timeout: float = 30.0, allow_auto_topic_creation: bool = True):
        self.bootstrap = parse_bootstrap(bootstrap_servers)
        self.client_id = client_id
        self.request_timeout = request_timeout
        self.allow_auto_topic_creation = allow_auto_topic_creation
        self.brokers: dict[int, tuple[str, int]] = {}
        self.topics: dict[str, TopicInfo] = {}
        self.topic_errors: dict[str, int] = {}  # error codes of topics the last metadata answers refused
        self.cluster_id: str | None = None
        self.controller_id: int = -1
        self._connections: dict[int, Connection] = {}
        self._connecting: dict[int, asyncio.Lock] = {}
        self._coordinators: dict[tuple[int, str], int] = {}
        self._refreshing: asyncio.Future | None = None
        self.metadata_updated = asyncio.Event()
        self.closed = False

    # Connections ----------------------------------------------------------------------------

    async def connection(self, node_id: int) -> Connection:
        conn = self._connections.get(node_id)
        if conn is not None and conn.connected:
            return conn
        lock = self._connecting.setdefault(node_id, asyncio.Lock())
        async with lock:
            conn = self._connections.get(node_id)
            if conn is not None and conn.connected:
                return conn
            if self.closed:
                raise KafkaConnectionError("the client is closed")
            if node_id == BOOTSTRAP:
                conn = await self._connect_bootstrap()
            else:
                if node_id not in self.brokers:
                    await self.refresh()
                if node_id not in self.brokers:
                    raise KafkaConnectionError(f"broker {node_id} is not in the cluster's metadata")
                host, port = self.brokers[node_id]
                conn = await Connection(host, port, client_id=self.client_id,
                                        request_timeout=self.request_timeout, node_id=node_id).connect()
            self._connections[node_id] = conn
            return conn

    async def _connect_bootstrap(self) -> Connection:
        # Known brokers first (the bootstrap list may be a load balancer that is gone), then the bootstrap list.
        candidates = list(self.brokers.values())
        random.shuffle(candidates)
        candidates += [a for a in self.bootstrap if a not in candidates]
        errors = []
        for host, port in candidates:
            try:
                return await Connection(host, port, client_id=self.client_id,
                                        request_timeout=self.request_timeout).connect()
            except KafkaConnectionError as e:
                errors.append(str(e))
        if len(errors) == 1:
            raise KafkaConnectionError(errors[0])
        raise KafkaConnectionError("cannot connect to any bootstrap server: " + "; ".join(errors))

    async def any_connection(self) -> Connection:
        for conn in self._connections.values():
            if conn.connected:
                return conn
        return await self.connection(BOOTSTRAP)

    async def request(self, node_id: int, api_key: int, body: dict, **kwargs) -> dict:
        conn = await self.connection(node_id)
        return await conn.request(api_key, body, **kwargs)

    async def request_any(self, api_key: int, body: dict, **kwargs) -> dict:
        conn = await self.any_connection()
        return await conn.request(api_key, body, **kwargs)

    # Metadata ------------------------------------------------------------------------------

    async def refresh(self, topics: list[str] | None = None) -> None:
        """Fetch metadata for these topics (None: all). Concurrent refreshes of all topics share one request."""
        if topics is None:
            if self._refreshing is not None:
                return await asyncio.shield(self._refreshing)
            self._refreshing = asyncio.get_running_loop().create_future()
            try:
                await self._refresh(None)
                self._refreshing.set_result(None)
            except BaseException as e:
                self._refreshing.set_exception(e)
                self._refreshing.exception()  # retrieved here; other waiters get it raised
                raise
            finally:
                self._refreshing = None
        else:
            await self._refresh(topics)

    async def _refresh(self, topics: list[str] | None) -> None:
        conn = await self.any_connection()
        wire_topics = None if topics is None else [{"name": t} for t in topics]
        try:
            response = await conn.request(METADATA, {
                "topics": wire_topics, "allow_auto_topic_creation": self.allow_auto_topic_creation})
        except KafkaConnectionError:
            conn = await self.connection(BOOTSTRAP)
            response = await conn.request(METADATA, {
                "topics": wire_topics, "allow_auto_topic_creation": self.allow_auto_topic_creation})
        self.brokers = {b["node_id"]: (b["host"], b["port"]) for b in response["brokers"]}
        self.cluster_id = response["cluster_id"]
        self.controller_id = response["controller_id"]
        if topics is None:
            self.topics = {}
        for t in response["topics"]:
            info = TopicInfo(t["name"], is_internal=t["is_internal"], error_code=t["error_code"])
            for p in t["partitions"]:
                info.partitions[p["partition_index"]] = PartitionInfo(
                    p["partition_index"], p["leader_id"], p["leader_epoch"], list(p["replica_nodes"]),
                    list(p["isr_nodes"]), p["error_code"])
            info.available = [p for p, pi in info.partitions.items() if pi.leader >= 0]
            if info.error_code and not info.partitions:
                self.topics.pop(info.name, None)
                self.topic_errors[info.name] = info.error_code
            else:
                self.topics[info.name] = info
                self.topic_errors.pop(info.name, None)
        self.metadata_updated.set()
        self.metadata_updated = asyncio.Event()

    async def topic(self, name: str, timeout: float | None = None, *, refresh: bool = False) -> TopicInfo:
        """The topic's metadata, asking the broker (and waiting for auto-creation) when it is unknown.
        An error that waiting cannot cure (an invalid name, no authorization) is raised at once."""
        info = self.topics.get(name)
        if info is not None and info.partitions and not refresh:
            return info
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.request_timeout if timeout is None else timeout)
        delay = 0.05
        last_error = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        while True:
            response_error = await self._refresh_one(name)
            info = self.topics.get(name)
            if info is not None and info.partitions:
                return info
            last_error = response_error or last_error
            if not error_class(last_error).code.retriable:
                raise_for_code(last_error, _refusal(name, last_error))
            if loop.time() + delay > deadline:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        if last_error == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
            raise UnknownTopicOrPartitionError(f"topic {name!r} does not exist")
        raise_for_code(last_error, f"topic {name!r} has no metadata")
        raise KafkaTimeoutError(f"no metadata for topic {name!r}")

    async def _refresh_one(self, name: str) -> int:
        await self.refresh([name])
        info = self.topics.get(name)
        if info is not None:
            return info.error_code
        return self.topic_errors.get(name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)

    def leader(self, topic: str, partition: int) -> int:
        info = self.topics.get(topic)
        if info is None or partition not in info.partitions:
            return -1
        return info.partitions[partition].leader

    # Coordinators --------------------------------------------------------------------------

    async def coordinator(self, key: str, key_type: int = GROUP_KEY) -> int:
        """The node id of the coordinator of a group (key_type 0) or a transactional id (key_type 1)."""
        node = self._coordinators.get((key_type, key))
        if node is not None:
            return node
        conn = await self.any_connection()
        version = conn.version(FIND_COORDINATOR)
        what = "group" if key_type == GROUP_KEY else "transactional id"
        if version >= 4:
            response = await conn.request(FIND_COORDINATOR, {"key_type": key_type, "coordinator_keys": [key]})
            answer = response["coordinators"][0]
        else:
            answer = await conn.request(FIND_COORDINATOR, {"key": key, "key_type": key_type})
        raise_for_code(answer["error_code"], f"no coordinator for {what} {key!r}")
        node = answer["node_id"]
        self.brokers.setdefault(node, (answer["host"], answer["port"]))
        self._coordinators[(key_type, key)] = node
        return node

    def forget_coordinator(self, key: str, key_type: int = GROUP_KEY) -> None:
        self._coordinators.pop((key_type, key), None)

    def close(self) -> None:
        self.closed = True
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()
