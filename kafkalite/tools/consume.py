"""`kafkalite consume TOPIC`: one record per line on stdout, as with kafka-console-consumer."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from kafkalite_client import Consumer

from kafkalite.tools.common import Exit, Progress, ToolError, unescape
from kafkalite.tools.render import bytes_json
from kafkalite.tools.topics import admin_for, require_topics

CLOSE_TIMEOUT = 10.0  # seconds for the final commit, and again for leaving the group
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


async def consume(args) -> int:
    if args.max_messages is not None and args.max_messages < 1:
        raise ToolError("--max-messages must be at least 1", Exit.USAGE)
    separator = unescape(args.key_separator).encode("utf-8")
    async with admin_for(args) as admin:
        # The consumer would wait for (or auto-create) a missing topic: say at once that it does not exist.
        partitions = [p.partition for p in (await require_topics(admin, [args.topic]))[args.topic].partitions]
    consumer = Consumer(bootstrap_servers=args.bootstrap, group_id=args.group, client_id="kafkalite-cli",
                        auto_offset_reset="earliest" if args.from_beginning else "latest")
    if args.group is None:
        consumer.assign([(args.topic, p) for p in partitions])
    else:
        consumer.subscribe([args.topic])

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)  # stop cleanly: commit what was printed, leave the group

    out = sys.stdout.buffer
    progress = Progress("consumed")
    remaining = args.max_messages
    idle_since = loop.time()
    try:
        await consumer.start()
        while not stopping.is_set() and (remaining is None or remaining > 0):
            batches = await consumer.getmany(timeout_ms=200, max_records=remaining or 500)
            count = 0
            for records in batches.values():
                for record in records:
                    out.write(json_line(record) if args.format == "json" else
                              text_line(record, args.print_key, separator))
                count += len(records)
            if count:
                out.flush()
                progress.add(count)
                idle_since = loop.time()
                if remaining is not None:
                    remaining -= count
            elif args.timeout is not None and loop.time() - idle_since >= args.timeout:
                break
        if args.group is not None:
            # Exactly what was printed: getmany never handed out more.
            async with asyncio.timeout(CLOSE_TIMEOUT):  # not wait_for: on 3.11 it can swallow a cancellation
                await consumer.commit()
    finally:
        progress.clear()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await consumer.close()
        except TimeoutError:
            # A stop must not hang on a slow LeaveGroup: the coordinator expires the member anyway.
            print(f"kafkalite: closing the consumer took over {CLOSE_TIMEOUT:g}s; exiting without waiting",
                  file=sys.stderr)
    print(f"Processed a total of {progress.count} messages", file=sys.stderr)
    return Exit.OK
