"""Broker settings: command-line flags, KAFKALITE_* environment variables and a TOML file.

Precedence: flag, then environment variable, then the TOML file, then the default. The TOML file
takes the flags' names (`listen = "127.0.0.1:9092"`) and Kafka's broker setting names
(`"num.partitions" = 3`, `"log.retention.ms" = 86400000`; unquoted dotted keys and tables such as
`[log]` + `retention.ms = 86400000` mean the same). Settings changed at run time by AlterConfigs are
kept in the data dir by DynamicSettings and override all of these.

Environment variables: a flag `--data-dir` is `KAFKALITE_DATA_DIR` (upper case, `-` to `_`); a broker setting is
`KAFKALITE_` + its Kafka name in upper case with `.` → `_`, `-` → `__` and `_` → `___` (the rule of Confluent's
Kafka images, which can be undone: `log.retention.ms` is `KAFKALITE_LOG_RETENTION_MS`). An environment variable
`KAFKALITE_*` that names nothing is reported (with the nearest name) as a warning, not an error: the environment
is shared with other programs, and kafkalite's tools and client read variables of their own (OTHER_VARIABLES).
"""

from __future__ import annotations

import argparse
import difflib
import json
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
    "producer.id.expiration.ms": (int, 86400000, "forget an idempotent producer whose last batch in a partition is "
                                  "this old"),
    # kafkalite's durability policy: "always" fsyncs before acknowledging acks=all, "interval" fsyncs
    # on log.flush.interval.* only, "never" leaves it to the OS.
    "kafkalite.durability": (str, "always", "when data is fsynced: always | interval | never (topics may override)"),
    "offsets.topic.num.partitions": (int, 50, "partitions of __consumer_offsets"),
    "offsets.topic.replication.factor": (int, 3, "replicas of __consumer_offsets in a cluster (created once that "
                                         "many brokers are live)"),
    "offsets.retention.minutes": (int, 10080, "how long an empty group's committed offsets are kept"),
    "transaction.state.log.num.partitions": (int, 50, "partitions of __transaction_state"),
    "transaction.state.log.replication.factor": (int, 3, "replicas of __transaction_state in a cluster (created "
                                                 "once that many brokers are live)"),
    "transaction.state.log.min.isr": (int, 2, "min.insync.replicas of __transaction_state (at most its "
                                      "replication factor)"),
    "transaction.max.timeout.ms": (int, 900000, "largest transaction.timeout.ms a producer may ask for"),
    "transactional.id.expiration.ms": (int, 604800000, "a transactional id whose transaction ended (or never "
                                       "began) this long ago is forgotten, with a tombstone in __transaction_state"),
    "transaction.remove.expired.transaction.cleanup.interval.ms": (
        int, 3600000, "how often transactional ids past transactional.id.expiration.ms are looked for"),
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": (
        int, 10000, "how often transactions that outlived their timeout are looked for and aborted"),
    "transaction.partition.verification.enable": (bool, True, "a partition leader asks the transaction coordinator "
                                                  "whether a producer's first transactional batch belongs to its "
                                                  "ongoing transaction before appending it (KIP-890)"),
    # Kafka waits 3 s; 100 ms still lets consumers started together share the first rebalance, and gets
    # a lone new consumer its first message well within a second.
    "group.initial.rebalance.delay.ms": (int, 100, "wait for more members before the first rebalance"),
    "group.min.session.timeout.ms": (int, 6000, "smallest session timeout a member may ask for"),
    "group.max.session.timeout.ms": (int, 1800000, "largest session timeout a member may ask for"),
    "group.max.size": (int, 2147483647, "most members in a group (GROUP_MAX_SIZE_REACHED beyond)"),
    # Cluster mode (--cluster), with Kafka's names and defaults.
    "broker.session.timeout.ms": (int, 9000, "a broker that has not renewed its etcd lease for this long is "
                                  "dead; it fences itself when its own renewals go unanswered this long"),
    "replica.lag.time.max.ms": (int, 30000, "a follower not caught up for this long leaves the ISR"),
    "min.insync.replicas": (int, 1, "acks=all needs this many in-sync replicas (topics may override)"),
    "default.replication.factor": (int, 1, "replicas of a topic created without a replication factor"),
    "unclean.leader.election.enable": (bool, False, "let a replica outside the ISR lead when no in-sync one is "
                                       "alive (may lose acknowledged data)"),
    "auto.leader.rebalance.enable": (bool, True, "move leadership back to preferred replicas now and then"),
    "leader.imbalance.check.interval.seconds": (int, 300, "how often preferred leaders are restored"),
    "broker.rack": (str, None, "this broker's rack, for rack-aware replica placement (unset: none)"),
    "max.incremental.fetch.session.cache.slots": (int, 1000, "incremental fetch sessions (KIP-227) the broker "
                                                  "keeps; 0: every fetch is a full one"),
    "connections.max.idle.ms": (int, 600000, "close connections idle this long"),
    "queued.max.requests": (int, 500, "requests buffered per connection before reading pauses"),
    "socket.request.max.bytes": (int, 104857600, "largest request frame"),
    "max.connections": (int, 10000, "connections accepted at once"),
}

DURABILITY_POLICIES = ("always", "interval", "never")

ENV_PREFIX = "KAFKALITE_"
# KAFKALITE_* variables that other parts of kafkalite read (the tools' default broker, the client's pure-Python
# switch, the test suite's example count): not broker settings, and not typos of one.
OTHER_VARIABLES = frozenset({"KAFKALITE_BOOTSTRAP", "KAFKALITE_PURE_PYTHON", "KAFKALITE_EXAMPLES"})


def setting_env_name(name: str) -> str:
    """The environment variable of a broker setting: log.retention.ms is KAFKALITE_LOG_RETENTION_MS."""
    return ENV_PREFIX + name.replace("_", "___").replace("-", "__").replace(".", "_").upper()


def flag_env_name(flag: str) -> str:
    """The environment variable of a flag: --data-dir is KAFKALITE_DATA_DIR."""
    return ENV_PREFIX + flag.replace("-", "_").upper()


def _setting_of_env_name(variable: str) -> str:
    """setting_env_name undone: the setting a KAFKALITE_* variable would name."""
    return variable[len(ENV_PREFIX):].lower().replace("___", "\0").replace("__", "-").replace("_", ".").replace(
        "\0", "_")


def nearest(name: str, known) -> str | None:
    """The known name closest to a misspelt one, if any is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: str, known) -> str:
    """'; did you mean X?' with the nearest known name, or '' when nothing is close."""
    guess = nearest(name, known)
    return f"; did you mean {guess}?" if guess else ""


def parse_host_port(value: str, default_port: int = 9092) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, default_port
    host = host.strip("[]")
    if not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{value!r} is not HOST:PORT (a port is 0-65535)")
    return host, int(port)


@dataclass
class BrokerConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 9092
    advertised_host: str | None = None  # defaults to the listen address
    advertised_port: int | None = None
    data_dir: str = "./kafkalite-data"
    node_id: int = 0
    log_level: str = "INFO"
    log_format: str = "text"
    cluster: str | None = None  # etcd://HOST:PORT[,...]/NAME: cluster mode; None: standalone
    settings: dict[str, Any] = field(default_factory=lambda: {k: v[1] for k, v in BROKER_SETTINGS.items()})
    warnings: list[str] = field(default_factory=list)  # problems worth logging once the broker starts

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
            raise ValueError(f"unknown setting {name!r}{did_you_mean(name, BROKER_SETTINGS)}")
        kind = BROKER_SETTINGS[name][0]
        if kind is bool and isinstance(value, str):
            if value.lower() not in ("true", "false"):
                raise ValueError(f"{name} must be true or false, not {value!r}")
            value = value.lower() == "true"
        try:
            value = kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be {kind.__name__}, not {value!r}") from None
        if name == "producer.id.expiration.ms" and not 1 <= value <= 2**31 - 1:
            raise ValueError(f"producer.id.expiration.ms must be between 1 and {2**31 - 1}, not {value!r}")
        if name == "kafkalite.durability" and value not in DURABILITY_POLICIES:
            raise ValueError(f"kafkalite.durability must be one of {', '.join(DURABILITY_POLICIES)}, not {value!r}")
        self.settings[name] = value


FLAGS = ("listen", "advertised-listener", "data-dir", "node-id", "config", "log-level", "log-format", "cluster")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", metavar="HOST:PORT", help="address to listen on (default 127.0.0.1:9092)")
    parser.add_argument("--advertised-listener", metavar="HOST:PORT", help="address clients are told to use")
    parser.add_argument("--data-dir", metavar="DIR", help="where the logs live (default ./kafkalite-data)")
    # No type=int: load_config checks every source of a value (flag, environment, file) the same way.
    parser.add_argument("--node-id", metavar="N", help="this broker's node id (default 0)")
    parser.add_argument("--config", metavar="FILE", help="a TOML file of settings")
    parser.add_argument("--cluster", metavar="etcd://HOST:PORT[,HOST:PORT...]/NAME",
                        help="join cluster NAME, whose metadata lives in etcd (default: standalone)")
    parser.add_argument("--log-level", metavar="LEVEL",
                        help="DEBUG (also traces every request), INFO, WARNING or ERROR (default INFO)")
    parser.add_argument("--log-format", metavar="FORMAT",
                        help="text, or json: one JSON object per line (default text)")
    parser.add_argument(
        "--set", metavar="NAME=VALUE", action="append", default=[],
        help="a broker setting by its Kafka name, e.g. --set num.partitions=3 (repeatable; also "
             "KAFKALITE_NUM_PARTITIONS=3, see docs/settings.md)",
    )


def _flattened(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """TOML tables and unquoted dotted keys as Kafka's dotted names: {"log": {"retention": {"ms": 1}}} becomes
    {"log.retention.ms": 1}."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flattened(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return _flattened(tomllib.load(f))
    except OSError as e:
        raise ValueError(f"cannot read config file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"config file {path}: {e}") from None


def _node_id(value: Any) -> int:
    if isinstance(value, bool) or not str(value).strip().isdigit():
        raise ValueError(f"node id must be an integer >= 0, not {value!r}")
    return int(value)


def _log_level(value: Any) -> str:
    level = str(value).upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, not {value!r}")
    return level


def _log_format(value: Any) -> str:
    fmt = str(value).lower()
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {value!r}")
    return fmt


def _cluster(value: Any) -> str:
    spec = str(value)
    hosts, sep, name = spec.removeprefix("etcd://").partition("/")
    if not spec.startswith("etcd://") or not sep or not name or not hosts:
        raise ValueError(f"{spec!r} is not etcd://HOST:PORT[,HOST:PORT...]/NAME")
    return spec


def load_config(args: argparse.Namespace, environ: dict[str, str] | None = None) -> BrokerConfig:
    """The settings from flags, KAFKALITE_* variables and the TOML file. Raises ValueError with a message
    that names the flag, variable or file a bad value came from. Variables that name nothing are in
    `config.warnings`, for the broker to log."""
    environ = os.environ if environ is None else environ
    config_file = args.config or environ.get("KAFKALITE_CONFIG")
    file_values = _read_toml(config_file) if config_file else {}
    given: dict[str, tuple[Any, str]] = {}  # attribute -> (value, where it came from)
    for flag in FLAGS:
        attr = flag.replace("-", "_")
        env_name = flag_env_name(flag)
        if getattr(args, attr, None) is not None:
            given[attr] = (getattr(args, attr), f"--{flag}")
        elif environ.get(env_name) is not None:
            given[attr] = (environ[env_name], env_name)
        elif flag in file_values or attr in file_values:
            given[attr] = (file_values.get(flag, file_values.get(attr)), f"config file {config_file}: {flag}")
    cfg = BrokerConfig()
    for attr, (value, source) in given.items():
        try:
            if attr == "listen":
                cfg.listen_host, cfg.listen_port = parse_host_port(str(value))
            elif attr == "advertised_listener":
                cfg.advertised_host, cfg.advertised_port = parse_host_port(str(value))
            elif attr == "data_dir":
                cfg.data_dir = str(value)
            elif attr == "node_id":
                cfg.node_id = _node_id(value)
            elif attr == "log_level":
                cfg.log_level = _log_level(value)
            elif attr == "log_format":
                cfg.log_format = _log_format(value)
            elif attr == "cluster":
                cfg.cluster = _cluster(value)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None
    # Broker settings, lowest precedence first: the file, then the environment, then --set.
    for name, value in file_values.items():
        if name not in FLAGS and name.replace("_", "-") not in FLAGS:
            try:
                cfg.set(name, value)
            except ValueError as e:
                raise ValueError(f"config file {config_file}: {e}") from None
    env_settings = {setting_env_name(name): name for name in BROKER_SETTINGS}
    flag_variables = {flag_env_name(flag) for flag in FLAGS}
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or variable in flag_variables or variable in OTHER_VARIABLES:
            continue
        name = env_settings.get(variable)
        if name is None:
            guess = nearest(_setting_of_env_name(variable), BROKER_SETTINGS)
            hint = f"; did you mean {setting_env_name(guess)} ({guess})?" if guess else ""
            cfg.warnings.append(f"ignoring {variable}: it names no broker setting{hint}")
            continue
        try:
            cfg.set(name, environ[variable])
        except ValueError as e:
            raise ValueError(f"{variable}: {e}") from None
    for item in getattr(args, "set", None) or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set takes NAME=VALUE, not {item!r}")
        try:
            cfg.set(name.strip(), value.strip())
        except ValueError as e:
            raise ValueError(f"--set: {e}") from None
    return cfg


class DynamicSettings:
    """Broker settings changed at run time (AlterConfigs), kept in the data dir so that they survive a restart.

    As Kafka's dynamic broker configs, they override the configured values (defaults, file, environment,
    flags); removing one puts the configured value back."""

    FILE_NAME = "dynamic_settings.json"

    def __init__(self, config: BrokerConfig):
        self.config = config
        self.path = os.path.join(config.data_dir, self.FILE_NAME)
        self.configured = dict(config.settings)  # what a setting falls back to when its dynamic value is removed
        self.values: dict[str, Any] = {}  # the dynamic ones, by Kafka name

    def load(self) -> None:
        """Apply the stored settings to the config: call it before anything is built from the settings."""
        try:
            with open(self.path) as f:
                stored = json.load(f)
            for name, value in stored.items():
                self.config.set(name, value)
                self.values[name] = self.config[name]
        except FileNotFoundError:
            return
        except (ValueError, AttributeError) as e:  # AttributeError: valid JSON, but not an object
            raise ValueError(f"{self.path}: {e}") from None

    def save(self, changes: dict[str, Any]) -> None:
        """Persist settings the config already holds: each name in `changes` is now dynamic, or, where its
        value is None, back to its configured value. Atomic: a crash leaves the old file or the new one."""
        values = dict(self.values)
        for name, value in changes.items():
            if value is None:
                values.pop(name, None)
            else:
                values[name] = self.config[name]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(values, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY)  # makes the rename itself durable
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self.values = values
