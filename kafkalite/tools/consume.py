"""`kafkalite consume TOPIC...`: one record per line on stdout, as with kafka-console-consumer, or in a
format of kcat's -f letters. Keys and values are written as the bytes they are."""

from __future__ import annotations

import asyncio
import json
import re
import sys

from kafkalite_client import Consumer
from kafkalite_client.offsets import EARLIEST, ISOLATION_LEVELS, LATEST, list_offsets
from kafkalite_client.records import TopicPartition

from kafkalite.tools.common import Exit, Progress, ToolError, graceful_stop, unescape
from kafkalite.tools.render import bytes_json
from kafkalite.tools.topics import admin_for, require_topics

CLOSE_TIMEOUT = 10.0  # seconds for the final commit, and again for leaving the group
# The broker answers a connection's requests in order, so the final commit and LeaveGroup wait behind a
# fetch that is waiting for data: a short wait keeps Ctrl-C well within a second.
FETCH_MAX_WAIT_MS = 100
# How often --pattern looks for new topics that match. Kafka's clients look at each metadata refresh
# (metadata.max.age.ms, 5 minutes); a person watching a terminal wants them sooner.
PATTERN_RECHECK_SECONDS = 5.0
NULL = b"null"  # how kafka-console-consumer prints a null key or value


def text_line(record, print_key: bool, separator: bytes) -> bytes:
    value = NULL if record.value is None else record.value
    if not print_key:
        return value + b"\n"
    return (NULL if record.key is None else record.key) + separator + value + b"\n"


def json_line(record) -> bytes:
    return json.dumps({
        "topic": record.topic, "partition": record.partition, "offset": record.offset,
        "timestamp": record.timestamp, "key": bytes_json(record.key), "value": bytes_json(record.value),
        "headers": [[k, bytes_json(v)] for k, v in record.headers],
    }, ensure_ascii=False).encode("utf-8") + b"\n"


def _length(data: bytes | None) -> bytes:
    return b"-1" if data is None else str(len(data)).encode()


def _headers(record) -> bytes:
    return b",".join(k.encode("utf-8") + b"=" + (v or b"") for k, v in record.headers)


# kcat's -f letters. As kcat prints them, a null key or value is empty and its length -1.
FORMAT_FIELDS = {
    "t": lambda r: r.topic.encode("utf-8"),
    "p": lambda r: str(r.partition).encode(),
    "o": lambda r: str(r.offset).encode(),
    "T": lambda r: str(r.timestamp).encode(),
    "k": lambda r: r.key or b"",
    "s": lambda r: r.value or b"",
    "h": _headers,
    "K": lambda r: _length(r.key),
    "S": lambda r: _length(r.value),
}


def compile_format(fmt: str):
    """A --format-string as a function of a record to the bytes to print."""
    parts: list = []
    text = unescape(fmt)
    literal = re.compile(r"[^%]+|%%")
    i = 0
    while i < len(text):
        match = literal.match(text, i)
        if match:
            parts.append(b"%" if match.group() == "%%" else match.group().encode("utf-8"))
            i = match.end()
            continue
        letter = text[i + 1:i + 2]
        if letter not in FORMAT_FIELDS:
            raise ToolError(f"--format-string: %{letter} is not a field; use one of "
                            f"{' '.join('%' + k for k in FORMAT_FIELDS)} or %% for a percent sign", Exit.USAGE)
        parts.append(FORMAT_FIELDS[letter])
        i += 2
    return lambda record: b"".join(p if isinstance(p, bytes) else p(record) for p in parts)


def parse_offset(text: str) -> int | str:
    """--offset: N, -N (N before the end), beginning or end."""
    if text in ("beginning", "end"):
        return text
    try:
        return int(text)
    except ValueError:
        raise ToolError(f"--offset {text!r} is not N, -N, beginning or end", Exit.USAGE) from None


async def start_offsets(cluster, tps: list[TopicPartition], offset: int | str,
                        isolation_level: str = "read_uncommitted") -> dict[TopicPartition, int]:
    """Where --offset starts each partition, kept within the partition's offsets (with read_committed, the end
    is the last stable offset)."""
    isolation = ISOLATION_LEVELS[isolation_level]
    starts = await list_offsets(cluster, dict.fromkeys(tps, EARLIEST), isolation_level=isolation)
    ends = await list_offsets(cluster, dict.fromkeys(tps, LATEST), isolation_level=isolation)
    out = {}
    for tp in tps:
        start, end = (starts[tp] or (0, 0))[0], (ends[tp] or (0, 0))[0]
        wanted = start if offset == "beginning" else end if offset == "end" else end + offset if offset < 0 else offset
        out[tp] = min(max(wanted, start), end)
    return out


async def chosen_topics(admin, args) -> list[str]:
    """The topics named, and those whose whole name matches --pattern (internal ones only by name)."""
    topics = list(dict.fromkeys(args.topics))
    if args.pattern is not None:
        try:
            pattern = re.compile(args.pattern)
        except re.error as e:
            raise ToolError(f"--pattern {args.pattern!r} is not a regular expression: {e}", Exit.USAGE) from None
        matched = [t for t in await admin.list_topics() if pattern.fullmatch(t) and t not in topics]
        if not matched and not topics:
            raise ToolError(f"no topic matches --pattern {args.pattern!r}", Exit.NOT_FOUND)
        topics += matched
    return topics


async def follow_pattern(consumer, args, topics: list[str], offset: int | str | None) -> None:
    """Take on the topics created since the start whose names match --pattern (adding to `topics`)."""
    pattern = re.compile(args.pattern)
    await consumer.cluster.refresh()
    new = sorted(name for name, info in consumer.cluster.topics.items()
                 if name not in topics and not info.is_internal and info.partitions and pattern.fullmatch(name))
    if not new:
        return
    topics += new
    if args.group is not None:
        consumer.subscribe(topics)  # rejoins the group with the new topics
        return
    tps = [TopicPartition(t, p) for t in new for p in sorted(consumer.cluster.topics[t].partitions)
           if not args.partition or p in args.partition]
    seeks = await start_offsets(consumer.cluster, tps, offset, args.isolation_level) if offset is not None else {}
    consumer.assign(consumer.assignment() | set(tps))
    for tp, position in seeks.items():
        consumer.seek(tp, position)  # at once, before the fetcher would reset them itself


def check_arguments(args) -> None:
    if not args.topics and args.pattern is None:
        raise ToolError("name a topic, or give --pattern REGEX", Exit.USAGE)
    if args.max_messages is not None and args.max_messages < 1:
        raise ToolError("--max-messages must be at least 1", Exit.USAGE)
    if args.group is not None and (args.partition or args.offset is not None):
        raise ToolError("--partition and --offset read without a group: drop --group, or move the group's offsets "
                        "with `kafkalite groups reset-offsets`", Exit.USAGE)
    if args.offset is not None and args.from_beginning:
        raise ToolError("give either --offset or --from-beginning (--offset beginning)", Exit.USAGE)
    if args.format_string is not None and args.format == "json":
        raise ToolError("give either --format json or --format-string", Exit.USAGE)


async def consume(args) -> int:
    check_arguments(args)
    offset = parse_offset(args.offset) if args.offset is not None else None
    if args.format_string is not None:
        render = compile_format(args.format_string)
    elif args.format == "json":
        render = json_line
    else:
        separator = unescape(args.key_separator).encode("utf-8")
        render = lambda record: text_line(record, args.print_key, separator)  # noqa: E731
    async with admin_for(args) as admin:
        # The consumer would wait for (or auto-create) a missing topic: say at once that it does not exist.
        topics = await chosen_topics(admin, args)
        described = await require_topics(admin, topics)
        tps = []
        for topic in topics:
            existing = [p.partition for p in described[topic].partitions]
            for p in args.partition or ():
                if p not in existing:
                    raise ToolError(f"topic {topic!r} has no partition {p} (it has {len(existing)})", Exit.NOT_FOUND)
            tps += [TopicPartition(topic, p) for p in args.partition or existing]
        seeks = await start_offsets(admin.cluster, tps, offset, args.isolation_level) if offset is not None else {}
    consumer = Consumer(bootstrap_servers=args.bootstrap, group_id=args.group, client_id="kafkalite-cli",
                        fetch_max_wait_ms=FETCH_MAX_WAIT_MS, isolation_level=args.isolation_level,
                        auto_offset_reset="earliest" if args.from_beginning else "latest")
    if args.group is None:
        consumer.assign(tps)
        for tp, position in seeks.items():
            consumer.seek(tp, position)  # before start(): no offset reset runs for these partitions
    else:
        consumer.subscribe(topics)

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def stop() -> None:  # Ctrl-C or SIGTERM: stop cleanly, commit what was printed, leave the group
        stopping.set()
        consumer.stop()

    out = sys.stdout.buffer
    progress = Progress("consumed")
    remaining = args.max_messages
    idle_since = loop.time()
    pattern_checked = loop.time()
    try:
        await consumer.start()
        with graceful_stop(stop):
            while not stopping.is_set() and (remaining is None or remaining > 0):
                batches = await consumer.getmany(timeout_ms=200, max_records=remaining or 500)
                count = 0
                for records in batches.values():
                    for record in records:
                        out.write(render(record))
                    count += len(records)
                if count:
                    out.flush()
                    progress.add(count)
                    idle_since = loop.time()
                    if remaining is not None:
                        remaining -= count
                elif args.timeout is not None and loop.time() - idle_since >= args.timeout:
                    break
                if args.pattern is not None and loop.time() - pattern_checked >= PATTERN_RECHECK_SECONDS:
                    pattern_checked = loop.time()
                    await follow_pattern(consumer, args, topics, offset)
        if args.group is not None:
            # Exactly what was printed: getmany never handed out more.
            async with asyncio.timeout(CLOSE_TIMEOUT):  # not wait_for: on 3.11 it can swallow a cancellation
                await consumer.commit()
    finally:
        progress.clear()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await consumer.close()
        except TimeoutError:
            # A stop must not hang on a slow LeaveGroup: the coordinator expires the member anyway.
            print(f"kafkalite: closing the consumer took over {CLOSE_TIMEOUT:g}s; exiting without waiting",
                  file=sys.stderr)
    print(f"Processed a total of {progress.count} messages", file=sys.stderr)
    return Exit.OK
