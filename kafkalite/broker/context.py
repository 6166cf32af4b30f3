"""What a handler sees of the request it serves and of the broker around it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kafkalite.broker.broker import Broker


@dataclass(slots=True)
class RequestContext:
    broker: "Broker"
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    client_host: str  # the peer's address, as DescribeGroups reports it
    connection_id: int
