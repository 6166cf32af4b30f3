"""The asyncio shell: sockets, per-connection pipelining, back-pressure, idle timeouts, shutdown.

Everything below this module is testable without a socket. A connection reads frames, decodes
each request, runs its handler as a task and writes the responses strictly in request order, so
a client may keep many requests in flight.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import os
import signal
import time

from kafkalite.app import App
from kafkalite.broker.dispatch import dispatch, unsupported_api_versions_response
from kafkalite.config import BrokerConfig
from kafkalite.datadir import DataDirError, DataDirLock
from kafkalite.log.errors import LogError
from kafkalite.protocol import wire
from kafkalite.protocol.errors import DecodeError
from kafkalite.protocol.framing import FrameSplitter, FrameTooLarge

log = logging.getLogger("kafkalite.server")

_connection_ids = itertools.count(1)

# What the first 4 bytes of a connection are when its client does not speak Kafka. Read as a frame size they are
# absurd (over 1 GB for the HTTP methods), so such a connection would be closed anyway: these say why.
_HTTP_METHODS = (b"GET ", b"POST", b"HEAD", b"PUT ", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC", b"PRI ")
_TLS_HANDSHAKE = b"\x16\x03"  # a TLS record of type handshake, version 3.x: a ClientHello


def _foreign_protocol(first_bytes: bytes) -> str | None:
    """Why a frame size that is out of range came from a client of another protocol, or None."""
    if first_bytes[:4] in _HTTP_METHODS:
        method = first_bytes[:4].decode("ascii").strip()
        return f"an HTTP request ({method} ...): this port speaks the Kafka protocol, not HTTP"
    if first_bytes[:2] == _TLS_HANDSHAKE:
        return "a TLS handshake: this port speaks the Kafka protocol in plain text (kafkalite has no TLS yet)"
    return None


class StartupError(Exception):
    """The broker cannot start (address in use, unusable data dir): a one-line message for the operator."""


class Connection(asyncio.BufferedProtocol):
    def __init__(self, server: "Server"):
        self.server = server
        self.broker = server.broker
        self.id = next(_connection_ids)
        self.splitter = FrameSplitter(server.config["socket.request.max.bytes"])
        # One future per request, in request order; each one's result is the encoded response.
        self.pending: collections.deque[asyncio.Future] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.last_active = time.monotonic()
        self.reading_paused = False
        self.writing_paused = False
        self.draining = False  # the server is stopping: take no new requests
        self.closed = False
        # Frames received but not started: requests start one per event-loop turn, and only while the client
        # reads its responses, so a client that never reads holds at most a few responses here, not
        # queued.max.requests of them (a burst of large Fetches would otherwise fill memory).
        self.backlog: collections.deque[memoryview] = collections.deque()
        self._pump_scheduled = False
        self._drained: asyncio.Future | None = None
        # The connection's first 4 bytes, to name a client of another protocol (HTTP, TLS) if they are not a size.
        self._first_bytes = b""
        self._receive_buffer: memoryview | None = None  # where the socket writes, until we have those 4 bytes
        self.frames_received = 0

    # ---------------------------------------------------------------- asyncio.BufferedProtocol

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else "?"
        if len(self.server.connections) >= self.server.config["max.connections"]:
            log.warning("refusing a connection from %s: max.connections reached", self.peer)
            transport.abort()
            self.closed = True
            return
        self.server.connections.add(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        # The socket reads straight into the splitter: a large request lands in its own buffer, not a copy.
        buffer = self.splitter.get_buffer(sizehint)
        if len(self._first_bytes) < 4:
            self._receive_buffer = buffer
        return buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.last_active = time.monotonic()
        if self._receive_buffer is not None:
            self._first_bytes += bytes(self._receive_buffer[: min(nbytes, 4 - len(self._first_bytes))])
            if len(self._first_bytes) >= 4:
                self._receive_buffer = None
        try:
            frames = self.splitter.buffer_updated(nbytes)
        except FrameTooLarge as e:
            # The first frame's size is the connection's first 4 bytes: another protocol's client, perhaps.
            foreign = _foreign_protocol(self._first_bytes) if self.frames_received == 0 else None
            self.close(foreign or f"{e}")
            return
        self.frames_received += len(frames)
        self.backlog.extend(frames)
        self._start_backlog()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        self.broker.services.connection_closed(self.id)
        for fut in self.pending:
            fut.cancel()
        self.pending.clear()
        self.backlog.clear()
        self._check_drained()

    def pause_writing(self) -> None:
        # The client is not reading: stop reading its requests too, so nothing piles up here.
        self.writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._send_finished()

    def _start_backlog(self) -> None:
        """Start the next received request if the client keeps up, and come back for the rest next turn."""
        if self._pump_scheduled:
            return
        if (self.backlog and not (self.closed or self.draining or self.writing_paused)
                and len(self.pending) < self.server.config["queued.max.requests"]):
            self._start_request(self.backlog.popleft())
            if self.backlog:
                self._pump_scheduled = True
                asyncio.get_running_loop().call_soon(self._pumped)
        self._update_reading()

    def _pumped(self) -> None:
        self._pump_scheduled = False
        self._start_backlog()

    # ---------------------------------------------------------------- requests

    def _start_request(self, frame: memoryview) -> None:
        try:
            header, body = wire.decode_request(frame)
        except wire.UnsupportedRequest as e:
            self.close(str(e))
            return
        except DecodeError as e:
            self.close(f"malformed request: {e}")
            return
        if body is None:  # ApiVersions of a version we do not speak: answer in v0 with the ranges
            fut = asyncio.get_running_loop().create_future()
            fut.set_result(unsupported_api_versions_response(header.correlation_id))
        else:
            fut = asyncio.ensure_future(self._handle(header, body))
        self.pending.append(fut)
        fut.add_done_callback(self._request_done)
        self._update_reading()

    async def _handle(self, header: wire.RequestHeader, body: dict) -> list | None:
        # A member's host as Kafka reports it in DescribeGroups (Java's InetAddress.toString()): "/127.0.0.1".
        response = await dispatch(self.broker.services, header, body, f"/{self.peer}", self.id)
        if response is None:
            return None
        return wire.encode_response(header.api_key, header.api_version, header.correlation_id, response)

    def _request_done(self, fut: asyncio.Future) -> None:
        if not self.closed:
            self._send_finished()

    def _send_finished(self) -> None:
        """Write the finished responses at the head of the queue: a response waits for those before it.
        Runs when a request finishes and when writing resumes; a failed handler closes the connection."""
        while self.pending and self.pending[0].done() and not (self.closed or self.writing_paused):
            fut = self.pending.popleft()
            if fut.cancelled():
                continue
            exc = fut.exception()
            if isinstance(exc, wire.UnsupportedRequest):  # an API with a schema but no handler
                self.close(str(exc))
                return
            if exc is not None:
                log.error("request failed on connection %d", self.id, exc_info=exc)
                self.close("internal error")
                return
            parts = fut.result()
            if parts is not None:
                self.transport.writelines(parts)  # may call pause_writing, which ends this loop
            self.last_active = time.monotonic()
        self._start_backlog()
        self._check_drained()

    def _update_reading(self) -> None:
        if self.closed or self.transport is None:
            return
        should_pause = (self.writing_paused or self.draining or bool(self.backlog)
                        or len(self.pending) >= self.server.config["queued.max.requests"])
        if should_pause and not self.reading_paused:
            self.transport.pause_reading()
            self.reading_paused = True
        elif not should_pause and self.reading_paused:
            self.transport.resume_reading()
            self.reading_paused = False

    # ---------------------------------------------------------------- closing

    def drain(self) -> asyncio.Future:
        """Take no new requests; the future completes once every response in flight has been written (or the
        connection is gone)."""
        self.draining = True
        self._update_reading()
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()
        self._check_drained()
        return self._drained

    def _check_drained(self) -> None:
        if self._drained is not None and not self._drained.done() and (self.closed or not self.pending):
            self._drained.set_result(None)

    def close(self, reason: str, flush: bool = False) -> None:
        """Close now (abort: bad input, idle, errors), or with flush once the written responses are sent."""
        if self.closed:
            return
        log.info("closing connection %d from %s: %s", self.id, self.peer, reason)
        self.closed = True
        if self.transport is not None:
            if flush:
                self.transport.close()
            else:
                self.transport.abort()
        self._check_drained()

    @property
    def idle(self) -> bool:
        return not self.pending and not self.backlog


def _os_reason(e: OSError) -> str:
    """The OS's words for an error (e.g. "Address already in use"), without asyncio's wrapping."""
    if isinstance(e.errno, int) and e.errno > 0:
        return os.strerror(e.errno)
    return e.strerror or str(e)


class Server:
    def __init__(self, config: BrokerConfig):
        self.config = config
        self.broker = App(config)
        self.connections: set[Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._idle_task: asyncio.Task | None = None
        self.stopped = asyncio.Event()
        self.data_dir_lock = DataDirLock(config.data_dir)

    async def start(self) -> None:
        """Lock the data dir, open the logs, then listen. Raises StartupError if any of it fails (what was opened
        is closed again)."""
        try:
            self.data_dir_lock.acquire()  # before anything reads or writes the data dir
        except DataDirError as e:
            raise StartupError(str(e)) from None
        try:
            summary = await self.broker.start()
        except (OSError, LogError, ValueError) as e:
            self.data_dir_lock.release()
            reason = _os_reason(e) if isinstance(e, OSError) else str(e)
            raise StartupError(f"cannot open data dir {self.config.data_dir}: {reason}") from None
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: Connection(self), self.config.listen_host, self.config.listen_port, reuse_address=True,
                start_serving=False,
            )
        except OSError as e:
            await self.broker.stop()
            self.data_dir_lock.release()
            raise StartupError(
                f"cannot listen on {self.config.listen_host}:{self.config.listen_port}: {_os_reason(e)}"
            ) from None
        sock = self._server.sockets[0].getsockname()
        if self.config.listen_port == 0:  # an ephemeral port: tell clients the real one
            self.config.listen_port = sock[1]
        try:
            await self.broker.listening(self.config.host, self.config.port)  # cluster mode: joins the cluster
        except Exception as e:
            self._server.close()
            await self.broker.stop()
            self.data_dir_lock.release()
            raise StartupError(f"cannot join the cluster: {e}") from None
        await self._server.start_serving()
        self._idle_task = asyncio.create_task(self._watch_idle_connections())
        scanned = summary.recovered_partitions
        recovery = (f"{scanned} of {summary.partitions} partition(s) needed a recovery scan, "
                    f"{summary.truncated_bytes} byte(s) truncated" if scanned else "no recovery scan needed")
        log.info(
            "kafkalite listening on %s:%d (advertised %s:%d), data dir %s, %d topic(s) recovered in %.2fs, %s",
            sock[0], sock[1], self.config.host, self.config.port, self.config.data_dir,
            summary.topics, summary.seconds, recovery,
        )

    def close_idle_connections(self, now: float) -> None:
        max_idle = self.config["connections.max.idle.ms"] / 1000
        for conn in list(self.connections):
            if conn.idle and now - conn.last_active > max_idle:
                conn.close("idle for longer than connections.max.idle.ms")

    async def _watch_idle_connections(self) -> None:
        # Checked ten times per idle limit (at most every 10 s): a connection closes by 1.1 times the limit.
        interval = min(self.config["connections.max.idle.ms"] / 10000, 10)
        while True:
            await asyncio.sleep(interval)
            self.close_idle_connections(time.monotonic())

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, let requests in flight finish and their responses go out (for at most `grace`
        seconds), close the connections, then flush and mark a clean shutdown. In cluster mode leadership moves
        to other replicas first (controlled shutdown), while this broker still serves its followers."""
        started = time.monotonic()
        await self.broker.controlled_shutdown()
        if self.broker.member is not None:
            log.info("controlled shutdown: leadership handed over in %.1f s", time.monotonic() - started)
        if self._server is not None:
            self._server.close()
        if self._idle_task is not None:
            self._idle_task.cancel()
        log.info("shutting down: no new connections, %d request(s) in flight",
                 sum(len(conn.pending) for conn in self.connections))
        drained = [conn.drain() for conn in list(self.connections)]
        if drained:
            _, busy = await asyncio.wait(drained, timeout=grace)
            if busy:
                log.warning("%d connection(s) still busy after %.0f s; closing them anyway", len(busy), grace)
        for conn in list(self.connections):
            conn.close("broker shutting down", flush=True)
        log.info("connections closed after %.1f s; closing the logs", time.monotonic() - started)
        await self.broker.stop()
        self.data_dir_lock.release()  # only once everything is flushed and closed
        self.stopped.set()


async def serve(config: BrokerConfig) -> None:
    """Serve until SIGTERM or SIGINT, then stop cleanly. Raises StartupError if the broker cannot start."""
    server = Server(config)
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before start: a signal during start-up still stops cleanly
        loop.add_signal_handler(sig, stop_requested.set)
    await server.start()
    await stop_requested.wait()
    await server.stop()
    log.info("stopped cleanly")


# The attributes every LogRecord has; anything else on a record came from `extra=` and goes into the JSON line.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601 with milliseconds), level, logger, message, the fields given
    as `extra=`, and the traceback as `exc` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(config: BrokerConfig) -> None:
    """The root logger at config.log_level, as text lines or (--log-format json) JSON lines, on stderr."""
    handler = logging.StreamHandler()
    if config.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=config.log_level, handlers=[handler], force=True)


def run(config: BrokerConfig) -> None:
    """Set up logging and serve (see serve)."""
    configure_logging(config)
    for warning in config.warnings:
        log.warning("%s", warning)
    try:
        import uvloop
    except ImportError:  # uvloop is a dependency, but the broker still runs without it
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))
