"""Broker settings: command-line flags, KAFKALITE_<FLAG> environment variables and a TOML file.

Precedence: flag, then environment variable, then the TOML file, then the default. The TOML file
takes the flags' names (`listen = "127.0.0.1:9092"`) and Kafka's broker setting names
(`"num.partitions" = 3`, `"log.retention.ms" = 86400000`).
"""

from __future__ import annotations

import argparse
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

# Kafka broker settings kafkalite honours, with Kafka's defaults (kafkalite's own where noted).
BROKER_SETTINGS: dict[str, tuple[type, Any, str]] = {
    "num.partitions": (int, 1, "partitions of an auto-created topic"),
    "auto.create.topics.enable": (bool, True, "create a topic when a client asks for it by name"),
    "message.max.bytes": (int, 1048588, "largest record batch a topic accepts, unless the topic overrides it"),
    "log.segment.bytes": (int, 1073741824, "segment size before a new one is rolled"),
    "log.retention.ms": (int, 604800000, "age after which closed segments are deleted (-1: keep forever)"),
    "log.retention.bytes": (int, -1, "partition size above which the oldest segments are deleted (-1: no limit)"),
    "log.retention.check.interval.ms": (int, 300000, "how often retention and compaction run"),
    "log.flush.interval.messages": (int, 9223372036854775807, "fsync after this many messages"),
    "log.flush.interval.ms": (int, 9223372036854775807, "fsync data older than this"),
    # kafkalite's durability policy: "always" fsyncs before acknowledging acks=all, "interval" fsyncs
    # on log.flush.interval.* only, "never" leaves it to the OS.
    "kafkalite.durability": (str, "always", "when data is fsynced: always | interval | never (topics may override)"),
    "offsets.topic.num.partitions": (int, 50, "partitions of __consumer_offsets"),
    "offsets.retention.minutes": (int, 10080, "how long an empty group's committed offsets are kept"),
    # Kafka waits 3 s; 100 ms still lets consumers started together share the first rebalance, and gets
    # a lone new consumer its first message well within a second.
    "group.initial.rebalance.delay.ms": (int, 100, "wait for more members before the first rebalance"),
    "group.min.session.timeout.ms": (int, 6000, "smallest session timeout a member may ask for"),
    "group.max.session.timeout.ms": (int, 1800000, "largest session timeout a member may ask for"),
    "connections.max.idle.ms": (int, 600000, "close connections idle this long"),
    "queued.max.requests": (int, 500, "requests buffered per connection before reading pauses"),
    "socket.request.max.bytes": (int, 104857600, "largest request frame"),
    "max.connections": (int, 10000, "connections accepted at once"),
}

DURABILITY_POLICIES = ("always", "interval", "never")


def parse_host_port(value: str, default_port: int = 9092) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, default_port
    host = host.strip("[]")
    try:
        return host, int(port)
    except ValueError:
        raise ValueError(f"{value!r} is not HOST:PORT") from None


@dataclass
class BrokerConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 9092
    advertised_host: str | None = None  # defaults to the listen address
    advertised_port: int | None = None
    data_dir: str = "./kafkalite-data"
    node_id: int = 0
    log_level: str = "INFO"
    settings: dict[str, Any] = field(default_factory=lambda: {k: v[1] for k, v in BROKER_SETTINGS.items()})

    def __getitem__(self, name: str) -> Any:
        return self.settings[name]

    @property
    def host(self) -> str:
        """The address clients are told to connect to."""
        return self.advertised_host or self.listen_host

    @property
    def port(self) -> int:
        return self.advertised_port if self.advertised_port is not None else self.listen_port

    def set(self, name: str, value: Any) -> None:
        """Set a Kafka-named broker setting, converting and checking its value."""
        if name not in BROKER_SETTINGS:
            raise ValueError(f"unknown setting {name!r}")
        kind = BROKER_SETTINGS[name][0]
        if kind is bool and isinstance(value, str):
            if value.lower() not in ("true", "false"):
                raise ValueError(f"{name} must be true or false, not {value!r}")
            value = value.lower() == "true"
        try:
            value = kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be {kind.__name__}, not {value!r}") from None
        if name == "kafkalite.durability" and value not in DURABILITY_POLICIES:
            raise ValueError(f"kafkalite.durability must be one of {', '.join(DURABILITY_POLICIES)}, not {value!r}")
        self.settings[name] = value


FLAGS = ("listen", "advertised-listener", "data-dir", "node-id", "config", "log-level")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", metavar="HOST:PORT", help="address to listen on (default 127.0.0.1:9092)")
    parser.add_argument("--advertised-listener", metavar="HOST:PORT", help="address clients are told to use")
    parser.add_argument("--data-dir", metavar="DIR", help="where the logs live (default ./kafkalite-data)")
    parser.add_argument("--node-id", metavar="N", type=int, help="this broker's node id (default 0)")
    parser.add_argument("--config", metavar="FILE", help="a TOML file of settings")
    parser.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    parser.add_argument(
        "--set", metavar="NAME=VALUE", action="append", default=[],
        help="a broker setting by its Kafka name, e.g. --set num.partitions=3 (repeatable)",
    )


def load_config(args: argparse.Namespace, environ: dict[str, str] | None = None) -> BrokerConfig:
    environ = os.environ if environ is None else environ
    given: dict[str, Any] = {}
    config_file = args.config or environ.get("KAFKALITE_CONFIG")
    file_values: dict[str, Any] = {}
    if config_file:
        with open(config_file, "rb") as f:
            file_values = tomllib.load(f)
    for flag in FLAGS:
        attr = flag.replace("-", "_")
        env_name = "KAFKALITE_" + attr.upper()
        value = getattr(args, attr, None)
        if value is None:
            value = environ.get(env_name)
        if value is None:
            value = file_values.get(flag, file_values.get(attr))
        if value is not None:
            given[attr] = value
    cfg = BrokerConfig()
    if "listen" in given:
        cfg.listen_host, cfg.listen_port = parse_host_port(str(given["listen"]))
    if "advertised_listener" in given:
        cfg.advertised_host, cfg.advertised_port = parse_host_port(str(given["advertised_listener"]))
    if "data_dir" in given:
        cfg.data_dir = str(given["data_dir"])
    if "node_id" in given:
        cfg.node_id = int(given["node_id"])
    if "log_level" in given:
        cfg.log_level = str(given["log_level"]).upper()
    for name, value in file_values.items():
        if name not in FLAGS and name.replace("_", "-") not in FLAGS:
            cfg.set(name, value)
    for item in getattr(args, "set", None) or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set takes NAME=VALUE, not {item!r}")
        cfg.set(name.strip(), value.strip())
    return cfg
