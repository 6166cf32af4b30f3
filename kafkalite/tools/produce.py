"""`kafkalite produce TOPIC`: each line of stdin becomes one record, as with kafka-console-producer."""

from __future__ import annotations

import asyncio
import sys

from kafkalite_client import KafkaError, Producer
from kafkalite_client.errors import raise_for_code

from kafkalite.protocol.errors import ErrorCode

from kafkalite.tools.common import Exit, Progress, ToolError, unescape

METADATA = 3
READ_SIZE = 1 << 16
TOPIC_WAIT = 5.0  # seconds to wait for an auto-created topic's metadata
MAX_UNACKNOWLEDGED = 10_000  # records sent but not yet acknowledged before reading more of stdin


async def read_lines(stream):
    """Lines of a binary stream without their line endings. Reads run in a thread, so a terminal that
    waits for typing does not stop the event loop (the producer's sender runs meanwhile)."""
    loop = asyncio.get_running_loop()
    read = getattr(stream, "read1", stream.read)
    pending = b""
    while True:
        chunk = await loop.run_in_executor(None, read, READ_SIZE)
        if not chunk:
            break
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            yield line.removesuffix(b"\r")
    if pending:
        yield pending.removesuffix(b"\r")


async def require_producible(producer: Producer, topic: str) -> None:
    """Fail before reading stdin when the topic does not exist and the broker will not create it. The
    client's own wait (Cluster.topic) would retry for the whole request timeout; one Metadata answer says it."""
    response = await producer.cluster.request_any(METADATA, {"topics": [{"name": topic}],
                                                             "allow_auto_topic_creation": True})
    code = response["topics"][0]["error_code"] if response["topics"] else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    if code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
        raise_for_code(code, f"topic {topic!r} does not exist")
    await producer.cluster.topic(topic, TOPIC_WAIT)  # an auto-created topic may need a moment for its leader


def split_key(line: bytes, separator: bytes | None, number: int) -> tuple[bytes | None, bytes]:
    if separator is None:
        return None, line
    key, sep, value = line.partition(separator)
    if not sep:
        raise ToolError(f"line {number} has no key separator {separator.decode()!r}: "
                        f"{line[:60].decode('utf-8', 'replace')!r}", Exit.USAGE)
    return key, value


async def produce(args) -> int:
    separator = unescape(args.key_separator).encode("utf-8") if args.key_separator is not None else None
    if separator == b"":
        raise ToolError("--key-separator cannot be empty", Exit.USAGE)
    progress = Progress("produced")
    failures: list[BaseException] = []
    unacknowledged: set[asyncio.Future] = set()

    def acknowledged(future: asyncio.Future) -> None:
        unacknowledged.discard(future)
        if future.cancelled():
            return
        if future.exception() is not None:
            failures.append(future.exception())
        else:
            progress.add()

    producer = Producer(args.bootstrap, client_id="kafkalite-cli", acks=args.acks,
                        compression_type=args.compression, linger_ms=5)
    sent = 0
    try:
        await producer.start()
        await require_producible(producer, args.topic)
        number = 0
        async for line in read_lines(sys.stdin.buffer):
            number += 1
            key, value = split_key(line, separator, number)
            future = await producer.enqueue(args.topic, value, key=key, partition=args.partition)
            unacknowledged.add(future)
            future.add_done_callback(acknowledged)
            sent += 1
            if failures:
                break
            if len(unacknowledged) >= MAX_UNACKNOWLEDGED:
                await producer.flush()
        await producer.flush()
    finally:
        progress.clear()
        await producer.close()
    if failures:
        error = failures[0]
        if isinstance(error, KafkaError) and not error.message:
            error = type(error)(f"sending to topic {args.topic!r}")
        ok = progress.count
        print(f"kafkalite: {len(failures)} of {sent} records failed, {ok} were written", file=sys.stderr)
        raise error
    if sys.stderr.isatty():
        print(f"produced {sent} records to {args.topic}", file=sys.stderr)
    return Exit.OK
