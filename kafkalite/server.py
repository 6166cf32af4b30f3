"""The asyncio shell: sockets, per-connection pipelining, back-pressure, idle timeouts, shutdown.

Everything below this module is testable without a socket. A connection reads frames, decodes
each request, runs its handler as a task and writes the responses strictly in request order, so
a client may keep many requests in flight.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import signal
import time

from kafkalite.broker.broker import Broker
from kafkalite.broker.dispatch import dispatch, unsupported_api_versions_response
from kafkalite.config import BrokerConfig
from kafkalite.protocol import wire
from kafkalite.protocol.errors import DecodeError
from kafkalite.protocol.framing import FrameSplitter, FrameTooLarge

log = logging.getLogger("kafkalite.server")

_connection_ids = itertools.count(1)


class Connection(asyncio.BufferedProtocol):
    def __init__(self, server: "Server"):
        self.server = server
        self.broker = server.broker
        self.id = next(_connection_ids)
        self.splitter = FrameSplitter(server.config["socket.request.max.bytes"])
        self.pending: collections.deque[asyncio.Future] = collections.deque()  # responses in request order
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.last_active = time.monotonic()
        self.reading_paused = False
        self.writing_paused = False
        self.closed = False
        self._writer_wakeup: asyncio.Future | None = None
        self._writer: asyncio.Task | None = None

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
        self._writer = asyncio.ensure_future(self._write_responses())

    def get_buffer(self, sizehint: int) -> memoryview:
        # The socket reads straight into the splitter: a large request is never copied on its way in.
        return self.splitter.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.last_active = time.monotonic()
        try:
            frames = self.splitter.buffer_updated(nbytes)
        except FrameTooLarge as e:
            self.close(f"{e}")
            return
        for frame in frames:
            if self.closed:
                return
            self._start_request(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        for fut in self.pending:
            fut.cancel()
        self.pending.clear()
        self._wake_writer()

    def pause_writing(self) -> None:
        # The client is not reading: stop reading its requests too, so nothing piles up here.
        self.writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._update_reading()
        self._wake_writer()

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
        response = await dispatch(self.broker, header, body, self.peer, self.id)
        if response is None:
            return None
        return wire.encode_response(header.api_key, header.api_version, header.correlation_id, response)

    def _request_done(self, fut: asyncio.Future) -> None:
        if self.pending and fut is self.pending[0]:
            self._wake_writer()

    def _wake_writer(self) -> None:
        if self._writer_wakeup is not None and not self._writer_wakeup.done():
            self._writer_wakeup.set_result(None)

    async def _write_responses(self) -> None:
        """Send finished responses in request order; a failed handler closes the connection."""
        loop = asyncio.get_running_loop()
        while not self.closed:
            while self.pending and self.pending[0].done() and not self.writing_paused:
                fut = self.pending.popleft()
                if fut.cancelled():
                    continue
                exc = fut.exception()
                if exc is not None:
                    log.error("request failed on connection %d", self.id, exc_info=exc)
                    self.close("internal error")
                    return
                parts = fut.result()
                if parts is not None:
                    self.transport.writelines(parts)
                self.last_active = time.monotonic()
            self._update_reading()
            self._writer_wakeup = loop.create_future()
            await self._writer_wakeup

    def _update_reading(self) -> None:
        if self.closed or self.transport is None:
            return
        should_pause = self.writing_paused or len(self.pending) >= self.server.config["queued.max.requests"]
        if should_pause and not self.reading_paused:
            self.transport.pause_reading()
            self.reading_paused = True
        elif not should_pause and self.reading_paused:
            self.transport.resume_reading()
            self.reading_paused = False

    def close(self, reason: str) -> None:
        if self.closed:
            return
        log.info("closing connection %d from %s: %s", self.id, self.peer, reason)
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        self._wake_writer()

    @property
    def idle(self) -> bool:
        return not self.pending


class Server:
    def __init__(self, config: BrokerConfig):
        self.config = config
        self.broker = Broker(config)
        self.connections: set[Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._idle_task: asyncio.Task | None = None
        self.stopped = asyncio.Event()

    async def start(self) -> None:
        summary = await self.broker.start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(self), self.config.listen_host, self.config.listen_port, reuse_address=True
        )
        sock = self._server.sockets[0].getsockname()
        if self.config.listen_port == 0:  # an ephemeral port: tell clients the real one
            self.config.listen_port = sock[1]
        self._idle_task = asyncio.create_task(self._close_idle_connections())
        log.info(
            "kafkalite listening on %s:%d (advertised %s:%d), data dir %s, %d topic(s) recovered in %.2fs",
            sock[0], sock[1], self.config.host, self.config.port, self.config.data_dir,
            summary.topics, summary.seconds,
        )

    async def _close_idle_connections(self) -> None:
        max_idle = self.config["connections.max.idle.ms"] / 1000
        while True:
            await asyncio.sleep(min(max_idle, 10))
            now = time.monotonic()
            for conn in list(self.connections):
                if conn.idle and now - conn.last_active > max_idle:
                    conn.close("idle for connections.max.idle.ms")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, let requests in flight finish, then flush and mark a clean shutdown."""
        if self._server is not None:
            self._server.close()
        if self._idle_task is not None:
            self._idle_task.cancel()
        in_flight = [fut for conn in self.connections for fut in conn.pending]
        if in_flight:
            await asyncio.wait(in_flight, timeout=grace)
        for conn in list(self.connections):
            conn.close("broker shutting down")
        await self.broker.stop()
        self.stopped.set()


async def serve(config: BrokerConfig) -> None:
    server = Server(config)
    await server.start()
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    await stop_requested.wait()
    log.info("shutting down")
    await server.stop()
    log.info("stopped cleanly")


def run(config: BrokerConfig) -> None:
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
    except ImportError:  # uvloop is a dependency, but the broker still runs without it
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))
