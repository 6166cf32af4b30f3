"""`kafkalite partitions`: move partitions to other brokers and elect leaders, as kafka-reassign-partitions and
kafka-leader-election do.

    kafkalite partitions reassign demo:0=4,2,3 demo:1=2,3,4 [--wait]   # move replicas; --wait shows progress
    kafkalite partitions reassign demo:0 --cancel                        # back to the replicas before the move
    kafkalite partitions list-reassignments
    kafkalite partitions elect-leaders [--unclean] [TOPIC[:P,...] ...]   # preferred replicas (default all)
"""

from __future__ import annotations

import asyncio
import sys

from kafkalite.protocol.api_keys import ApiKey
from kafkalite.protocol.errors import ErrorCode
from kafkalite.tools.common import Exit, ToolError, print_table
from kafkalite.tools.topics import admin_for


def parse_moves(specs: list[str], cancel: bool) -> dict[str, list[dict]]:
    """TOPIC:P=B,B,... (or TOPIC:P with --cancel) as AlterPartitionReassignments topics."""
    topics: dict[str, list[dict]] = {}
    for spec in specs:
        where, sep, replicas = spec.partition("=")
        topic, colon, partition = where.rpartition(":")
        if not colon or not topic or not partition.isdigit() or bool(sep) == cancel:
            form = "TOPIC:PARTITION" if cancel else "TOPIC:PARTITION=BROKER,BROKER,..."
            raise ToolError(f"{spec!r} is not {form}", Exit.USAGE)
        brokers = None
        if not cancel:
            try:
                brokers = [int(b) for b in replicas.split(",")]
            except ValueError:
                raise ToolError(f"{spec!r}: replicas are broker ids separated by commas", Exit.USAGE) from None
        topics.setdefault(topic, []).append({"partition_index": int(partition), "replicas": brokers})
    return topics


async def reassign(args) -> int:
    topics = parse_moves(args.moves, args.cancel)
    async with admin_for(args) as admin:
        cluster = admin.cluster
        response = await cluster.request(await _controller(cluster), ApiKey.ALTER_PARTITION_REASSIGNMENTS, {
            "timeout_ms": 30000, "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()]})
        failed = 0
        for topic in response["responses"]:
            for part in topic["partitions"]:
                code = part["error_code"]
                state = "cancelled" if args.cancel else "started"
                print(f"{topic['name']}:{part['partition_index']}: "
                      f"{state if code == 0 else ErrorCode(code).name}")
                failed += code != 0
        if failed:
            return Exit.ERROR
        if args.wait and not args.cancel:
            await _wait_done(cluster, {(t, p["partition_index"]) for t, ps in topics.items() for p in ps})
    return Exit.OK


async def _controller(cluster) -> int:
    await cluster.refresh()
    return cluster.controller_id


async def _in_progress(cluster) -> dict[tuple[str, int], dict]:
    response = await cluster.request(await _controller(cluster), ApiKey.LIST_PARTITION_REASSIGNMENTS,
                                     {"timeout_ms": 30000, "topics": None})
    return {(t["name"], p["partition_index"]): p for t in response["topics"] for p in t["partitions"]}


async def _wait_done(cluster, moves: set[tuple[str, int]]) -> None:
    """Show progress until every move is done (the new replicas caught up and the old ones dropped)."""
    while True:
        pending = {k: v for k, v in (await _in_progress(cluster)).items() if k in moves}
        if not pending:
            print("all reassignments done")
            return
        status = ", ".join(f"{t}:{p} adding {v['adding_replicas']}" for (t, p), v in sorted(pending.items()))
        print(f"waiting: {status}", file=sys.stderr)
        await asyncio.sleep(1)  # the refresh pace of a progress display


async def list_reassignments(args) -> int:
    async with admin_for(args) as admin:
        moves = await _in_progress(admin.cluster)
    rows = [["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"]]
    for (topic, partition), p in sorted(moves.items()):
        rows.append([topic, partition, _ids(p["replicas"]), _ids(p["adding_replicas"]),
                     _ids(p["removing_replicas"])])
    if len(rows) == 1:
        print("no reassignment in progress")
    else:
        print_table(rows)
    return Exit.OK


async def elect_leaders(args) -> int:
    wanted = None
    if args.partitions:
        wanted = {}
        for spec in args.partitions:
            topic, colon, parts = spec.partition(":")
            wanted.setdefault(topic, set())
            if colon:
                try:
                    wanted[topic] |= {int(p) for p in parts.split(",")}
                except ValueError:
                    raise ToolError(f"{spec!r} is not TOPIC[:P,P,...]", Exit.USAGE) from None
    async with admin_for(args) as admin:
        cluster = admin.cluster
        await cluster.refresh()
        request = None
        if wanted is not None:
            request = []
            for topic, parts in wanted.items():
                partitions = sorted(parts) or sorted((await cluster.topic(topic)).partitions)
                request.append({"topic": topic, "partitions": partitions})
        response = await cluster.request(cluster.controller_id, ApiKey.ELECT_LEADERS, {
            "election_type": 1 if args.unclean else 0, "topic_partitions": request, "timeout_ms": 30000})
    rows = [["TOPIC", "PARTITION", "RESULT"]]
    for topic in response["replica_election_results"]:
        for part in topic["partition_result"]:
            code = part["error_code"]
            rows.append([topic["topic"], part["partition_id"], "elected" if code == 0 else ErrorCode(code).name])
    print_table(rows) if len(rows) > 1 else print("no partition needed an election")
    return Exit.OK


def _ids(ids: list[int]) -> str:
    return ",".join(map(str, ids)) or "-"
