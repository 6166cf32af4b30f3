"""`kafkalite groups list|describe|delete|reset-offsets|delete-offsets`: consumer groups through the Admin
client, with kafka-consumer-groups' tables and conventions (reset-offsets previews unless --execute)."""

from __future__ import annotations

import datetime
import sys

from kafkalite_client.errors import GroupIdNotFoundError, NonEmptyGroupError, raise_for_code
from kafkalite_client.offsets import EARLIEST, LATEST, list_offsets
from kafkalite_client.records import TopicPartition

from kafkalite.protocol.api_keys import ApiKey
from kafkalite.protocol.errors import ErrorCode
from kafkalite.tools.common import Exit, ToolError, error_name, print_table
from kafkalite.tools.topics import admin_for, require_topics

DEAD = "Dead"  # how the coordinator describes a group it does not know
OFFSET_DELETE = ApiKey.OFFSET_DELETE


def no_such_group(group: str) -> ToolError:
    return ToolError(f"consumer group {group!r} does not exist", Exit.NOT_FOUND)


async def list_(args) -> int:
    async with admin_for(args) as admin:
        listings = await admin.list_groups()
    for g in listings:
        print(f"{g.group_id}\t{g.state or '?'}" if args.state else g.group_id)
    return Exit.OK


async def describe(args) -> int:
    async with admin_for(args) as admin:
        group = (await admin.describe_groups([args.group]))[args.group]
        if args.state or args.members:
            if group.state == DEAD:
                raise no_such_group(args.group)
            if args.state:
                coordinator = await admin.cluster.coordinator(args.group)
                host, port = admin.cluster.brokers.get(coordinator, ("?", "?"))
                print_table([["GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"],
                             [args.group, f"{host}:{port} ({coordinator})", group.protocol or "-", group.state,
                              len(group.members)]])
            else:
                print_members(args.group, group, args.verbose)
            return Exit.OK
        owners: dict[tuple[str, int], object] = {}
        for member in group.members:
            for topic, partitions in member.assignment.items():
                for p in partitions:
                    owners[(topic, p)] = member
        committed_topics = {tp.topic for tp in await admin.list_group_offsets(args.group)}
        topics = sorted(committed_topics | {topic for topic, _ in owners})
        if group.state == DEAD and not topics:
            raise no_such_group(args.group)
        lags = await admin.group_lag(args.group, topics)
    print(f"Group {args.group} is {group.state} with {len(group.members)} member(s)"
          + (f" (protocol {group.protocol})" if group.protocol else "") + ".")
    rows = [["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"]]
    for tp, lag in sorted(lags.items()):
        member = owners.get((tp.topic, tp.partition))
        rows.append([tp.topic, tp.partition, "-" if lag.committed is None else lag.committed, lag.end_offset,
                     lag.lag, member.member_id if member else "-", member.client_host if member else "-",
                     member.client_id if member else "-"])
    if len(rows) > 1:
        print()
        print_table(rows)
    return Exit.OK


def print_members(group_id: str, group, verbose: bool) -> None:
    if not group.members:
        print(f"Consumer group '{group_id}' has no active members.")
        return
    rows = [["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"] + (["ASSIGNMENT"] if verbose else [])]
    for m in sorted(group.members, key=lambda m: m.member_id):
        row = [group_id, m.member_id, m.client_host, m.client_id, sum(map(len, m.assignment.values()))]
        if verbose:
            row.append(",".join(f"{t}({','.join(map(str, sorted(ps)))})" for t, ps in sorted(m.assignment.items()))
                       or "-")
        rows.append(row)
    print_table(rows)


async def delete(args) -> int:
    async with admin_for(args) as admin:
        try:
            await admin.delete_groups([args.group])
        except GroupIdNotFoundError:
            raise no_such_group(args.group) from None
        except NonEmptyGroupError:
            raise ToolError(f"consumer group {args.group!r} has active members; stop its consumers first "
                            "(NON_EMPTY_GROUP)") from None
    print(f"Deleted consumer group {args.group}.")
    return Exit.OK


def parse_topic_partitions(specs: list[str]) -> list[tuple[str, list[int] | None]]:
    """`--topic T` (every partition) or `--topic T:0,2` (those), as kafka-consumer-groups takes them."""
    out = []
    for spec in specs:
        topic, sep, numbers = spec.partition(":")
        try:
            partitions = [int(n) for n in numbers.split(",")] if sep else None
        except ValueError:
            partitions = []
        if not topic or partitions == [] or (partitions and min(partitions) < 0):
            raise ToolError(f"--topic {spec!r} is not TOPIC or TOPIC:PARTITION,...", Exit.USAGE)
        out.append((topic, partitions))
    return out


async def chosen_partitions(admin, specs: list[tuple[str, list[int] | None]]) -> list[TopicPartition]:
    """The partitions named, checking that each exists."""
    topics = await require_topics(admin, sorted({topic for topic, _ in specs}))
    out: set[TopicPartition] = set()
    for topic, partitions in specs:
        existing = {p.partition for p in topics[topic].partitions}
        for p in sorted(existing) if partitions is None else partitions:
            if p not in existing:
                raise ToolError(f"topic {topic!r} has no partition {p} (it has {len(existing)})", Exit.NOT_FOUND)
            out.add(TopicPartition(topic, p))
    return sorted(out)


def datetime_ms(text: str) -> int:
    """Kafka's --to-datetime form (YYYY-MM-DDTHH:mm:SS.sss, an optional offset or Z); local time without one."""
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ToolError(f"--to-datetime {text!r} is not YYYY-MM-DDTHH:MM:SS[.sss][+HH:MM]", Exit.USAGE) from None
    if when.tzinfo is None:
        when = when.astimezone()  # the local time zone, as kafka-consumer-groups assumes
    return int(when.timestamp() * 1000)


async def log_offsets(admin, tps: list[TopicPartition], which: int) -> dict[TopicPartition, int]:
    found = await list_offsets(admin.cluster, dict.fromkeys(tps, which))
    return {tp: answer[0] if answer else 0 for tp, answer in found.items()}


async def new_offsets(admin, args, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """Where the reset would put each partition, kept within the partition's offsets as Kafka keeps it."""
    starts, ends = (await log_offsets(admin, tps, EARLIEST)), (await log_offsets(admin, tps, LATEST))
    if args.to_earliest:
        wanted = starts
    elif args.to_latest:
        wanted = ends
    elif args.to_offset is not None:
        wanted = dict.fromkeys(tps, args.to_offset)
    elif args.to_datetime is not None:
        found = await list_offsets(admin.cluster, dict.fromkeys(tps, datetime_ms(args.to_datetime)))
        wanted = {tp: found[tp][0] if found.get(tp) else ends[tp] for tp in tps}  # nothing that late: the end
    else:
        committed = await admin.list_group_offsets(args.group, tps)
        missing = [f"{tp.topic}-{tp.partition}" for tp in tps if tp not in committed]
        if missing:
            raise ToolError(f"cannot shift the offsets of {', '.join(missing)}: group {args.group!r} has no "
                            "committed offset there; use --to-earliest, --to-latest or --to-offset")
        wanted = {tp: committed[tp] + args.shift_by for tp in tps}
    return {tp: min(max(wanted[tp], starts[tp]), ends[tp]) for tp in tps}


async def reset_offsets(args) -> int:
    if args.to_offset is not None and args.to_offset < 0:
        raise ToolError("--to-offset must be 0 or more", Exit.USAGE)
    specs = parse_topic_partitions(args.topic) if args.topic else None
    async with admin_for(args) as admin:
        if specs is None:  # --all-topics
            specs = [(t, None) for t in sorted({tp.topic for tp in await admin.list_group_offsets(args.group)})]
            if not specs:
                raise ToolError(f"consumer group {args.group!r} has no committed offsets; name the topics with "
                                "--topic", Exit.NOT_FOUND)
        tps = await chosen_partitions(admin, specs)
        group = (await admin.describe_groups([args.group]))[args.group]
        if group.members:  # as kafka-consumer-groups: not even a preview while consumers hold the offsets
            raise ToolError(f"consumer group {args.group!r} has active members; stop its consumers before "
                            f"resetting offsets (it is {group.state})")
        new = await new_offsets(admin, args, tps)
        if args.execute:
            new = await admin.reset_group_offsets(args.group, offsets=new)
    print_table([["TOPIC", "PARTITION", "NEW-OFFSET"]] + [[tp.topic, tp.partition, o] for tp, o in sorted(new.items())])
    if not args.execute and not args.dry_run:
        print("Nothing was changed: add --execute to commit these offsets.", file=sys.stderr)
    return Exit.OK


async def delete_offsets(args) -> int:
    specs = parse_topic_partitions(args.topic)
    async with admin_for(args) as admin:
        tps = await chosen_partitions(admin, specs)
        by_topic: dict[str, list[dict]] = {}
        for tp in tps:
            by_topic.setdefault(tp.topic, []).append({"partition_index": tp.partition})
        node = await admin.cluster.coordinator(args.group)
        response = await admin.cluster.request(node, OFFSET_DELETE, {
            "group_id": args.group, "topics": [{"name": t, "partitions": ps} for t, ps in by_topic.items()]})
    if response["error_code"] == ErrorCode.GROUP_ID_NOT_FOUND:
        raise no_such_group(args.group)
    raise_for_code(response["error_code"], f"deleting offsets of group {args.group!r}")
    rows = [["TOPIC", "PARTITION", "STATUS"]]
    failed = 0
    for t in response["topics"]:
        for p in sorted(t["partitions"], key=lambda p: p["partition_index"]):
            code = p["error_code"]
            failed += code != 0
            rows.append([t["name"], p["partition_index"], error_name(code) if code else "Successful"])
    print_table(rows)
    if failed:
        subscribed = any(row[2] == "GROUP_SUBSCRIBED_TO_TOPIC" for row in rows[1:])
        raise ToolError(f"{failed} of {len(rows) - 1} offsets were not deleted"
                        + ("; the group's consumers subscribe to the topic: stop them first" if subscribed else ""))
    return Exit.OK
