"""What the tools share: exit codes, failures as sentences, the progress line, small argument parsers."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import importlib
import os
import signal
import sys
import time
from typing import Awaitable, Callable

from kafkalite.protocol.errors import ErrorCode

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
BOOTSTRAP_VARIABLE = "KAFKALITE_BOOTSTRAP"  # the default for --bootstrap, when set


def default_bootstrap() -> str:
    return os.environ.get(BOOTSTRAP_VARIABLE) or DEFAULT_BOOTSTRAP


class Exit(enum.IntEnum):
    """The tools' exit codes. Scripts may rely on them: each means one kind of failure."""

    OK = 0
    ERROR = 1  # the broker refused the request, or something else went wrong
    USAGE = 2  # bad arguments or bad input (argparse exits with 2 as well)
    UNREACHABLE = 3  # cannot connect to the broker, or the connection broke
    NOT_FOUND = 4  # no such topic, partition or group
    NOT_AUTHORIZED = 5  # the broker denied access
    TIMED_OUT = 6  # the broker did not answer in time
    ALREADY_EXISTS = 7  # the topic to create exists already
    INTERRUPTED = 130  # stopped by Ctrl-C (128 + SIGINT), as shells report it


EXIT_MEANINGS = {
    Exit.OK: "success",
    Exit.ERROR: "the broker refused the request (its error code is named), or another failure",
    Exit.USAGE: "bad arguments or bad input",
    Exit.UNREACHABLE: "cannot connect to the broker, or the connection broke",
    Exit.NOT_FOUND: "no such topic, partition or group",
    Exit.NOT_AUTHORIZED: "not authorized",
    Exit.TIMED_OUT: "the broker did not answer in time",
    Exit.ALREADY_EXISTS: "the topic already exists",
    Exit.INTERRUPTED: "interrupted (Ctrl-C)",
}

_EXIT_BY_ERROR = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: Exit.NOT_FOUND,
    ErrorCode.UNKNOWN_TOPIC_ID: Exit.NOT_FOUND,
    ErrorCode.GROUP_ID_NOT_FOUND: Exit.NOT_FOUND,
    ErrorCode.RESOURCE_NOT_FOUND: Exit.NOT_FOUND,
    ErrorCode.TOPIC_AUTHORIZATION_FAILED: Exit.NOT_AUTHORIZED,
    ErrorCode.GROUP_AUTHORIZATION_FAILED: Exit.NOT_AUTHORIZED,
    ErrorCode.CLUSTER_AUTHORIZATION_FAILED: Exit.NOT_AUTHORIZED,
    ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: Exit.NOT_AUTHORIZED,
    ErrorCode.DELEGATION_TOKEN_AUTHORIZATION_FAILED: Exit.NOT_AUTHORIZED,
    ErrorCode.SASL_AUTHENTICATION_FAILED: Exit.NOT_AUTHORIZED,
    ErrorCode.REQUEST_TIMED_OUT: Exit.TIMED_OUT,
    ErrorCode.TOPIC_ALREADY_EXISTS: Exit.ALREADY_EXISTS,
}


class ToolError(Exception):
    """A failure the tool has already put into words."""

    def __init__(self, message: str, exit_code: Exit = Exit.ERROR):
        super().__init__(message)
        self.exit_code = exit_code


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"UNKNOWN_ERROR_CODE_{code}"


def exit_for_error_code(code: int) -> Exit:
    return _EXIT_BY_ERROR.get(code, Exit.ERROR)


def explain(error: BaseException) -> tuple[str, Exit]:
    """A failure as one sentence and its exit code."""
    # Imported here: cli.py imports this module, and `kafkalite serve` should not load the client library.
    from kafkalite_client import KafkaConnectionError, KafkaError, KafkaTimeoutError

    if isinstance(error, ToolError):
        return str(error), error.exit_code
    if isinstance(error, KafkaError):
        code = int(error.code)
        what = error.message or f"the broker answered {error.name.lower().replace('_', ' ')}"
        exit_code = exit_for_error_code(code)
        if exit_code == Exit.NOT_AUTHORIZED:
            what = f"not authorized: {what}"
        return f"{what} ({error.name})", exit_code
    if isinstance(error, (KafkaConnectionError, ConnectionError)):
        text = str(error) or "the connection to the broker failed"
        return f"{text}; is the broker running, and is --bootstrap its address?", Exit.UNREACHABLE
    if isinstance(error, (KafkaTimeoutError, TimeoutError, asyncio.TimeoutError)):
        return str(error) or "the broker did not answer in time", Exit.TIMED_OUT
    if isinstance(error, OSError):
        return error.strerror or str(error), Exit.ERROR
    raise error


class Stop:
    """Ctrl-C (SIGINT) and SIGTERM while a tool runs. A tool that can stop cleanly (finish the record in
    hand, flush, commit, leave its group) says how with `graceful_stop`; otherwise, or at a second signal,
    the tool's task is cancelled. Either way the tool exits 130 after Ctrl-C."""

    def __init__(self, task: asyncio.Task):
        self.task = task
        self.signal: int | None = None
        self.graceful: Callable[[], None] | None = None
        self.pending = False  # a signal arrived that the event loop has not handled yet

    def __call__(self, signum: int) -> None:
        self.pending = False
        first = self.signal is None
        self.signal = self.signal or signum
        if first and self.graceful is not None:
            self.graceful()
        else:
            self.task.cancel()


_current_stop: contextvars.ContextVar[Stop] = contextvars.ContextVar("kafkalite_stop")


@contextlib.contextmanager
def graceful_stop(callback: Callable[[], None]):
    """While inside, a first Ctrl-C or SIGTERM calls `callback` instead of cancelling the tool."""
    stop = _current_stop.get(None)
    if stop is None:  # run outside run_tool (an in-process test): nothing to hook
        yield
        return
    if stop.signal is not None:
        callback()  # a signal came while setting up: stop at once
    previous, stop.graceful = stop.graceful, callback
    try:
        yield
    finally:
        stop.graceful = previous


async def _supervise(tool: Callable[..., Awaitable[int | None]], args) -> int:
    """The tool under signal handling and, for tools that take one, the overall --timeout."""
    loop = asyncio.get_running_loop()
    stop = Stop(asyncio.current_task())
    _current_stop.set(stop)
    blocking = getattr(tool, "blocks_the_loop", False)

    def on_signal(signum, _frame) -> None:
        # Handled in the loop, where the tool can stop cleanly. A loop that has not come round to the last
        # signal is blocked (or the tool is a blocking one): then stop where it is, as Python does by default.
        if blocking or stop.pending:
            raise KeyboardInterrupt
        stop.pending = True
        loop.call_soon_threadsafe(stop, signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    deadline = getattr(args, "deadline", None)
    try:
        async with asyncio.timeout(deadline) as timer:
            code = await tool(args)
    except asyncio.CancelledError:
        if stop.signal is None:
            raise
        code = 128 + stop.signal
    except TimeoutError:
        if not timer.expired():
            raise
        raise ToolError(f"the broker did not answer within {deadline:g}s (--timeout)", Exit.TIMED_OUT) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop.signal == signal.SIGINT:
        return Exit.INTERRUPTED
    return int(code or Exit.OK)


def run_tool(target: str, args) -> int:
    """Run the tool "module:function" (in kafkalite.tools) to completion; failures become
    `kafkalite: <sentence>` on stderr and an exit code."""
    module, _, function = target.partition(":")
    tool: Callable[..., Awaitable[int | None]] = getattr(importlib.import_module(f"kafkalite.tools.{module}"), function)
    try:
        return asyncio.run(_supervise(tool, args))
    except KeyboardInterrupt:  # before the tool's own handlers were in place
        print(file=sys.stderr)
        return Exit.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): not an error; keep Python from complaining at exit.
        sys.stderr.close()
        return Exit.OK
    except Exception as e:  # noqa: BLE001 - every failure must end as a sentence, not a traceback
        message, exit_code = explain(e)
        print(f"kafkalite: {message}", file=sys.stderr)
        return exit_code


def parse_config_pairs(pairs: list[str] | None) -> dict[str, str]:
    """`--config k=v` options as a dict."""
    out = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ToolError(f"--config {pair!r} is not of the form NAME=VALUE", Exit.USAGE)
        out[name.strip()] = value
    return out


def print_table(rows: list[list], indent: str = "") -> None:
    """Left-aligned columns, separated by two spaces, as kafka-consumer-groups prints them."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(indent + "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())


def unescape(text: str) -> str:
    r"""Separators given on a command line: '\t' means a tab, as in Kafka's console tools."""
    return text.encode("utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")


class Progress:
    """A self-overwriting status line on stderr, shown only when stderr is a terminal."""

    INTERVAL = 0.25  # seconds between redraws

    def __init__(self, verb: str, stream=None):
        self.verb = verb
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.count = 0
        self.started = time.monotonic()
        self._drawn_at = 0.0

    def add(self, n: int = 1) -> None:
        self.count += n
        if self.enabled:
            now = time.monotonic()
            if now - self._drawn_at >= self.INTERVAL:
                self._drawn_at = now
                self.stream.write(f"\r{self.verb} {self.count} records ({self.rate():,.0f}/s)\x1b[K")
                self.stream.flush()

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.count / elapsed if elapsed > 0 else 0.0

    def clear(self) -> None:
        if self.enabled and self._drawn_at:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
