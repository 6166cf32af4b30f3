"""`kafkalite topics create|list|describe|delete|alter`: topic administration through the Admin client."""

from __future__ import annotations

from kafkalite_client import Admin
from kafkalite_client.errors import UnknownTopicOrPartitionError, raise_for_code

from kafkalite.tools.common import Exit, ToolError, parse_config_pairs, print_table
from kafkalite.protocol.api_keys import ApiKey

DESCRIBE_CONFIGS = ApiKey.DESCRIBE_CONFIGS
TOPIC_RESOURCE = 2
TOPIC_OVERRIDE = 1  # DescribeConfigs config_source DYNAMIC_TOPIC_CONFIG: set on the topic itself
DEFAULT_CONFIG = 5  # config_source: Kafka's built-in default
CONFIG_SOURCES = {0: "UNKNOWN", 1: "DYNAMIC_TOPIC_CONFIG", 2: "DYNAMIC_BROKER_CONFIG",
                  3: "DYNAMIC_DEFAULT_BROKER_CONFIG", 4: "STATIC_BROKER_CONFIG", 5: "DEFAULT_CONFIG",
                  6: "DYNAMIC_BROKER_LOGGER_CONFIG", 7: "CLIENT_METRICS_CONFIG", 8: "GROUP_CONFIG"}
SENSITIVE = "(sensitive)"  # a value the broker does not disclose (sent as null)


def admin_for(args) -> Admin:
    deadline = getattr(args, "deadline", None)
    timeout_ms = 30000 if deadline is None else max(1, int(deadline * 1000))
    return Admin(args.bootstrap, client_id="kafkalite-cli", request_timeout_ms=timeout_ms)


async def require_topics(admin, names: list[str]) -> dict:
    """The topics' descriptions, failing fast (one Metadata request) when one does not exist."""
    return await admin.describe_topics(list(names))


async def create(args) -> int:
    if args.partitions is not None and args.partitions < 1:
        raise ToolError(f"--partitions must be at least 1, not {args.partitions}", Exit.USAGE)
    if args.replication_factor is not None and args.replication_factor < 1:
        raise ToolError(f"--replication-factor must be at least 1, not {args.replication_factor}", Exit.USAGE)
    configs = parse_config_pairs(args.config)
    async with admin_for(args) as admin:
        await admin.create_topic(args.name, -1 if args.partitions is None else args.partitions,
                                 replication_factor=-1 if args.replication_factor is None else args.replication_factor,
                                 configs=configs, if_not_exists=args.if_not_exists)
    print(f"Created topic {args.name}.")
    return Exit.OK


async def list_(args) -> int:
    async with admin_for(args) as admin:
        for name in await admin.list_topics(include_internal=args.include_internal):
            print(name)
    return Exit.OK


async def topic_configs(admin, name: str) -> list[dict]:
    """Every config of the topic with its source and synonyms (the values beneath it, down to the default).
    Admin.describe_configs gives values without their source, so this asks DescribeConfigs directly."""
    response = await admin.cluster.request_any(DESCRIBE_CONFIGS, {
        "resources": [{"resource_type": TOPIC_RESOURCE, "resource_name": name, "configuration_keys": None}],
        "include_synonyms": True, "include_documentation": False})
    result = response["results"][0]
    raise_for_code(result["error_code"], f"describing the configs of topic {name!r}: "
                                         f"{result['error_message'] or 'refused'}")
    return sorted(result["configs"], key=lambda c: c["name"])


def shown(value: str | None) -> str:
    return SENSITIVE if value is None else value


def source_text(config: dict) -> str:
    """Where the value in force comes from, as Kafka names it; a broker setting by its own name."""
    source = CONFIG_SOURCES.get(config["config_source"], str(config["config_source"]))
    setting = next((s["name"] for s in config["synonyms"] or () if s["source"] == config["config_source"]), None)
    return f"{source}:{setting}" if setting and setting != config["name"] else source


def default_text(config: dict) -> str:
    defaults = [s for s in config["synonyms"] or () if s["source"] == DEFAULT_CONFIG]
    return shown(defaults[0]["value"]) if defaults else "-"


def config_rows(configs: list[dict]) -> list[list[str]]:
    rows = [["CONFIG", "VALUE", "SOURCE", "DEFAULT"]]
    rows += [[c["name"], shown(c["value"]), source_text(c), default_text(c)] for c in configs]
    return rows


async def describe(args) -> int:
    async with admin_for(args) as admin:
        names = args.names or await admin.list_topics(include_internal=False)
        topics = await require_topics(admin, names)
        for name, topic in topics.items():
            configs = await topic_configs(admin, name)
            overrides = ",".join(f"{c['name']}={shown(c['value'])}" for c in configs
                                 if c["config_source"] == TOPIC_OVERRIDE)
            replication = max((len(p.replicas) for p in topic.partitions), default=0)
            print(f"Topic: {name}\tPartitionCount: {len(topic.partitions)}\tReplicationFactor: {replication}"
                  f"\tConfigs: {overrides}")
            for p in topic.partitions:
                print(f"\tTopic: {name}\tPartition: {p.partition}\tLeader: {p.leader}"
                      f"\tReplicas: {','.join(map(str, p.replicas))}\tIsr: {','.join(map(str, p.isr))}")
            if args.all_configs:
                print()
                print_table(config_rows(configs), indent="\t")
                print()
    return Exit.OK


async def delete(args) -> int:
    async with admin_for(args) as admin:
        try:
            await admin.delete_topics([args.name], if_exists=args.if_exists)
        except UnknownTopicOrPartitionError:
            raise ToolError(f"topic {args.name!r} does not exist (UNKNOWN_TOPIC_OR_PARTITION)",
                            Exit.NOT_FOUND) from None
    print(f"Deleted topic {args.name}.")
    return Exit.OK


async def alter(args) -> int:
    changes: dict[str, str | None] = dict(parse_config_pairs(args.config))
    changes.update((name, None) for name in args.delete_config or ())
    if not changes and args.partitions is None:
        raise ToolError("nothing to alter: give --config NAME=VALUE, --delete-config NAME or --partitions N",
                        Exit.USAGE)
    async with admin_for(args) as admin:
        topic = (await require_topics(admin, [args.name]))[args.name]
        if args.partitions is not None:
            if args.partitions <= len(topic.partitions):
                raise ToolError(f"topic {args.name!r} has {len(topic.partitions)} partitions; --partitions can "
                                "only add partitions", Exit.USAGE)
            await admin.create_partitions({args.name: args.partitions})
        if changes:
            await admin.alter_configs(args.name, changes)
    done = [f"{k}={v}" if v is not None else f"{k} (back to default)" for k, v in changes.items()]
    if args.partitions is not None:
        done.insert(0, f"{args.partitions} partitions")
    print(f"Altered topic {args.name}: {', '.join(done)}.")
    return Exit.OK
