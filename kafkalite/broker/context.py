"""What a handler sees of the request it serves and of the services around it (built in kafkalite/app.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kafkalite.broker.fetch_sessions import FetchSessionCache
    from kafkalite.broker.groups import GroupService
    from kafkalite.broker.producer_ids import ProducerIdBlocks
    from kafkalite.broker.transactions import TransactionService
    from kafkalite.config import BrokerConfig, DynamicSettings
    from kafkalite.metadata.local import LocalMetadataStore
    from kafkalite.replication.replica_manager import ReplicaManager


@dataclass(slots=True)
class Services:
    """The services handlers may use; one per broker, shared by every request."""

    config: "BrokerConfig"
    dynamic_settings: "DynamicSettings"
    metadata: "LocalMetadataStore"  # the image (leaders, topics, brokers) and topic changes
    replicas: "ReplicaManager"  # local replicas: append, read, wait on watermarks
    groups: "GroupService"
    producer_ids: "ProducerIdBlocks"
    fetch_sessions: "FetchSessionCache"
    transactions: "TransactionService | None" = None
    # per connection: done once its latest Produce request has made its appends (produce.py keeps them in order)
    appends_done: dict[int, asyncio.Future] = field(default_factory=dict)
    # per connection: partitions whose last batch was refused before its append, and the error (produce.py)
    refused_before_append: dict[int, dict[tuple[str, int], object]] = field(default_factory=dict)  # Refusal

    def connection_closed(self, connection_id: int) -> None:
        self.refused_before_append.pop(connection_id, None)

    @property
    def node_id(self) -> int:
        return self.config.node_id


@dataclass(slots=True)
class RequestContext:
    services: Services
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    client_host: str  # the peer's address, as DescribeGroups reports it ("/127.0.0.1", as Java prints it)
    connection_id: int

    @property
    def peer(self) -> str:
        """The peer's address, for log lines."""
        return self.client_host.lstrip("/")

    # The services, by name, so a handler reads ctx.replicas rather than ctx.services.replicas.
    @property
    def config(self) -> "BrokerConfig":
        return self.services.config

    @property
    def node_id(self) -> int:
        return self.services.config.node_id

    @property
    def metadata(self) -> "LocalMetadataStore":
        return self.services.metadata

    @property
    def replicas(self) -> "ReplicaManager":
        return self.services.replicas

    @property
    def groups(self) -> "GroupService":
        return self.services.groups

    @property
    def producer_ids(self) -> "ProducerIdBlocks":
        return self.services.producer_ids

    @property
    def transactions(self) -> "TransactionService | None":
        return self.services.transactions

    @property
    def dynamic_settings(self) -> "DynamicSettings":
        return self.services.dynamic_settings
