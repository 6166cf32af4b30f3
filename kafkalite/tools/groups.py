"""`kafkalite groups list|describe|delete|reset-offsets`: consumer groups through the Admin client."""

from __future__ import annotations

from kafkalite_client.errors import GroupIdNotFoundError, NonEmptyGroupError

from kafkalite.tools.common import Exit, ToolError
from kafkalite.tools.topics import admin_for, require_topics

DEAD = "Dead"  # how the coordinator describes a group it does not know


def print_table(rows: list[list]) -> None:
    """Left-aligned columns, separated by two spaces, as kafka-consumer-groups prints them."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())


async def list_(args) -> int:
    async with admin_for(args) as admin:
        listings = await admin.list_groups()
    for g in listings:
        print(f"{g.group_id}\t{g.state or '?'}" if args.state else g.group_id)
    return Exit.OK


async def describe(args) -> int:
    async with admin_for(args) as admin:
        group = (await admin.describe_groups([args.group]))[args.group]
        owners: dict[tuple[str, int], object] = {}
        for member in group.members:
            for topic, partitions in member.assignment.items():
                for p in partitions:
                    owners[(topic, p)] = member
        committed_topics = {tp.topic for tp in await admin.list_group_offsets(args.group)}
        topics = sorted(committed_topics | {topic for topic, _ in owners})
        if group.state == DEAD and not topics:
            raise ToolError(f"consumer group {args.group!r} does not exist", Exit.NOT_FOUND)
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


async def delete(args) -> int:
    async with admin_for(args) as admin:
        try:
            await admin.delete_groups([args.group])
        except GroupIdNotFoundError:
            raise ToolError(f"consumer group {args.group!r} does not exist", Exit.NOT_FOUND) from None
        except NonEmptyGroupError:
            raise ToolError(f"consumer group {args.group!r} has active members; stop its consumers first "
                            "(NON_EMPTY_GROUP)") from None
    print(f"Deleted consumer group {args.group}.")
    return Exit.OK


async def reset_offsets(args) -> int:
    target = "earliest" if args.to_earliest else "latest" if args.to_latest else args.to_offset
    if isinstance(target, int) and target < 0:
        raise ToolError("--to-offset must be 0 or more", Exit.USAGE)
    async with admin_for(args) as admin:
        await require_topics(admin, args.topic)
        new = await admin.reset_group_offsets(args.group, args.topic, to=target)
    rows = [["TOPIC", "PARTITION", "NEW-OFFSET"]] + [[tp.topic, tp.partition, o] for tp, o in new.items()]
    print_table(rows)
    return Exit.OK
