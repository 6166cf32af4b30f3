"""`kafkalite produce TOPIC`: each line of stdin (or of --file) becomes one record, as with
kafka-console-producer."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading

from kafkalite_client import KafkaError, Producer
from kafkalite_client.errors import raise_for_code

from kafkalite.protocol.api_keys import ApiKey
from kafkalite.protocol.errors import ErrorCode

from kafkalite.tools.common import Exit, Progress, ToolError, graceful_stop, unescape

METADATA = ApiKey.METADATA
READ_SIZE = 1 << 16
READ_AHEAD = 4  # chunks read but not yet sent
TOPIC_WAIT = 5.0  # seconds to wait for an auto-created topic's metadata
MAX_UNACKNOWLEDGED = 10_000  # records sent but not yet acknowledged before reading more of stdin
RECORD_OVERHEAD = 21  # a record's own fields besides key, value and headers, at most (varints and attributes)


class LineReader:
    """Lines of a file descriptor without their line endings, read by a daemon thread: a terminal that waits
    for typing neither stops the event loop (the producer's sender runs meanwhile) nor, as a thread of the
    default executor would, keeps the process from exiting on Ctrl-C."""

    def __init__(self, fd: int, max_line: int):
        self.fd = fd
        self.max_line = max_line
        self.chunks: asyncio.Queue[bytes | BaseException] = asyncio.Queue(READ_AHEAD)
        self.stopped = asyncio.Event()
        self.finished = threading.Event()  # the lines are no longer wanted: the thread reads no more

    def stop(self) -> None:
        self.stopped.set()

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        while not self.finished.is_set():
            try:
                chunk: bytes | BaseException = os.read(self.fd, READ_SIZE)
            except OSError as e:
                chunk = e
            try:  # waits while READ_AHEAD chunks are queued; fails once the loop has closed
                asyncio.run_coroutine_threadsafe(self.chunks.put(chunk), loop).result()
            except (RuntimeError, concurrent.futures.CancelledError):
                return
            if not isinstance(chunk, bytes) or not chunk:
                return

    async def _next_chunk(self) -> bytes | None:
        """The next chunk, b"" at the end, or None once stopped."""
        get = asyncio.ensure_future(self.chunks.get())
        stopped = asyncio.ensure_future(self.stopped.wait())
        try:
            await asyncio.wait({get, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not get.done():
            get.cancel()
            return None
        chunk = get.result()
        if isinstance(chunk, BaseException):
            raise chunk
        return chunk

    async def lines(self):
        threading.Thread(target=self._read, args=(asyncio.get_running_loop(),), daemon=True,
                         name="kafkalite-produce-reader").start()
        pending = b""
        number = 0
        try:
            while True:
                chunk = await self._next_chunk()
                if chunk is None:
                    return  # stopped: what was read but not yet a whole line is dropped
                if not chunk:
                    break
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    number += 1
                    yield number, line.removesuffix(b"\r")
                    if self.stopped.is_set():
                        return
                if len(pending) > self.max_line:
                    raise ToolError(f"line {number + 1} is longer than --max-record-bytes ({self.max_line})",
                                    Exit.USAGE)
            if pending:  # a last line without a newline is a record too
                yield number + 1, pending.removesuffix(b"\r")
        finally:
            self.finished.set()


async def require_producible(producer: Producer, topic: str) -> None:
    """Fail before reading stdin when the topic does not exist and the broker will not create it. The
    client's own wait (Cluster.topic) would retry for the whole request timeout; one Metadata answer says it."""
    response = await producer.cluster.request_any(METADATA, {"topics": [{"name": topic}],
                                                             "allow_auto_topic_creation": True})
    code = response["topics"][0]["error_code"] if response["topics"] else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    if code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
        raise_for_code(code, f"topic {topic!r} does not exist")
    if code == ErrorCode.INVALID_TOPIC_EXCEPTION:
        raise_for_code(code, f"{topic!r} is not a valid topic name (letters, digits, '.', '_' and '-', "
                             "at most 249 characters)")
    await producer.cluster.topic(topic, TOPIC_WAIT)  # an auto-created topic may need a moment for its leader


def split_key(line: bytes, separator: bytes | None, number: int) -> tuple[bytes | None, bytes]:
    if separator is None:
        return None, line
    key, sep, value = line.partition(separator)
    if not sep:
        raise ToolError(f"line {number} has no key separator {separator.decode()!r}: "
                        f"{line[:60].decode('utf-8', 'replace')!r}", Exit.USAGE)
    return key, value


def parse_headers(pairs: list[str] | None) -> list[tuple[str, bytes]]:
    """`--header NAME=VALUE` options, in order; a name may repeat, as Kafka headers may."""
    out = []
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ToolError(f"--header {pair!r} is not of the form NAME=VALUE", Exit.USAGE)
        out.append((name, unescape(value).encode("utf-8")))
    return out


HEADERS_END, HEADERS_SEPARATOR, HEADER_NAME_END = b"\t", b",", b":"  # kafka-console-producer's defaults


def split_headers(line: bytes, number: int, null: bytes | None) -> tuple[list[tuple[str, bytes | None]], bytes]:
    """--parse-headers: `NAME:VALUE,NAME:VALUE<tab>rest of the line` (an empty part: no headers)."""
    part, sep, rest = line.partition(HEADERS_END)
    if not sep:
        raise ToolError(f"line {number} has no tab after its headers (--parse-headers)", Exit.USAGE)
    headers = []
    for pair in part.split(HEADERS_SEPARATOR) if part else ():
        name, sep, value = pair.partition(HEADER_NAME_END)
        if not sep or not name:
            raise ToolError(f"line {number}: header {pair.decode('utf-8', 'replace')!r} is not NAME:VALUE "
                            "(--parse-headers)", Exit.USAGE)
        headers.append((name.decode("utf-8", "replace"), None if value == null else value))
    return headers, rest


def record_size(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes | None]]) -> int:
    size = RECORD_OVERHEAD + len(key or b"") + len(value or b"")
    return size + sum(len(k.encode()) + len(v or b"") + 10 for k, v in headers)


async def produce(args) -> int:
    separator = unescape(args.key_separator).encode("utf-8") if args.key_separator is not None else None
    if separator == b"":
        raise ToolError("--key-separator cannot be empty", Exit.USAGE)
    if args.max_record_bytes < 1:
        raise ToolError("--max-record-bytes must be at least 1", Exit.USAGE)
    null = unescape(args.null_marker).encode("utf-8") if args.null_marker is not None else None
    headers = parse_headers(args.header)
    fd = sys.stdin.fileno()
    if args.file is not None:
        try:
            fd = os.open(args.file, os.O_RDONLY)
        except OSError as e:
            raise ToolError(f"cannot read --file {args.file}: {e.strerror}", Exit.USAGE) from None
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

    # The client's own limit is on the request, so it must hold the largest record in a batch of its own.
    producer = Producer(args.bootstrap, client_id="kafkalite-cli", acks=args.acks,
                        compression_type=args.compression, linger_ms=5,
                        max_request_size=max(1048576, args.max_record_bytes + 1024))
    reader = LineReader(fd, args.max_record_bytes)
    sent = 0
    try:
        await producer.start()
        await require_producible(producer, args.topic)
        with graceful_stop(reader.stop):  # Ctrl-C: send what was read, then exit 130
            async for number, line in reader.lines():
                line_headers = headers
                if args.parse_headers:
                    parsed, line = split_headers(line, number, null)
                    line_headers = headers + parsed
                key, value = split_key(line, separator, number)
                if null is not None:
                    key = None if key == null else key
                    value = None if value == null else value
                if args.empty_as_null and value == b"":
                    value = None
                size = record_size(key, value, line_headers)
                if size > args.max_record_bytes:
                    raise ToolError(f"line {number} makes a record of {size} bytes, more than --max-record-bytes "
                                    f"({args.max_record_bytes})", Exit.USAGE)
                future = await producer.enqueue(args.topic, value, key=key, headers=line_headers,
                                                partition=args.partition)
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
        await producer.close()  # flushes what was sent, also when a bad line stopped the reading
        if args.file is not None:
            os.close(fd)
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
