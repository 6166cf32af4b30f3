"""The asyncio shell (kafkalite/server.py), a Connection driven through a fake transport: no sockets.

The Server itself is started for real (on an ephemeral loopback port nobody connects to) so that the broker
behind it, the idle watcher and stop() are the real ones; every connection under test is a FakeTransport.
"""

from __future__ import annotations

import asyncio
import struct
import time

import pytest

from kafkalite.broker.registry import HANDLERS
from kafkalite.config import BrokerConfig
from kafkalite.protocol import wire
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.framing import FrameSplitter
from kafkalite.protocol.messages import APIS_BY_NAME
from kafkalite.protocol.record_batch import build_batch
from kafkalite.server import Connection, Server

API_VERSIONS, METADATA, FETCH = (APIS_BY_NAME[name].key for name in ("ApiVersions", "Metadata", "Fetch"))


class FakeTransport(asyncio.Transport):
    """Records what the protocol writes and asks of it; close() and abort() report connection_lost soon after,
    as asyncio's transports do."""

    def __init__(self, protocol: asyncio.Protocol):
        super().__init__()
        self.protocol = protocol
        self.written = bytearray()
        self.reading = True
        self.closed = False
        self.aborted = False

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default

    def write(self, data) -> None:
        assert not self.closed, "write after close"
        self.written += data

    def writelines(self, parts) -> None:
        for part in parts:
            self.write(part)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self._lose(aborted=False)

    def abort(self) -> None:
        self._lose(aborted=True)

    def _lose(self, aborted: bool) -> None:
        if not self.closed:
            self.closed, self.aborted = True, aborted
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def responses(self) -> list[tuple[int, memoryview]]:
        """(correlation id, frame) of every response written so far, in order."""
        frames = FrameSplitter().feed(bytes(self.written))
        return [(struct.unpack_from(">i", frame)[0], frame) for frame in frames]

    def correlation_ids(self) -> list[int]:
        return [cid for cid, _ in self.responses()]


@pytest.fixture
async def make_server(tmp_path):
    """Starts Servers with the given broker settings; stops them after the test."""
    servers: list[Server] = []

    async def make(**settings) -> Server:
        config = BrokerConfig(listen_port=0, data_dir=str(tmp_path / f"data{len(servers)}"))
        config.set("offsets.topic.num.partitions", 1)  # 50 partitions per test would only cost time
        for name, value in settings.items():
            config.set(name, value)
        server = Server(config)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        if not server.stopped.is_set():
            await server.stop(grace=1)


@pytest.fixture
async def server(make_server) -> Server:
    server = await make_server()
    await server.broker.metadata.create_topic("t", 1, {})
    return server


def connect(server: Server) -> tuple[Connection, FakeTransport]:
    conn = Connection(server)
    transport = FakeTransport(conn)
    conn.connection_made(transport)
    return conn, transport


def feed(conn: Connection, data: bytes) -> None:
    """Deliver received bytes as asyncio's transports do to a BufferedProtocol: into conn's own buffers."""
    data = memoryview(data)
    while data and not conn.closed:  # a closed transport reads no more
        buf = conn.get_buffer(len(data))
        n = min(len(buf), len(data))
        buf[:n] = data[:n]
        data = data[n:]
        conn.buffer_updated(n)


def frame(api_key: int, version: int, correlation_id: int, body: dict) -> bytes:
    return wire.join(wire.encode_request(api_key, version, correlation_id, "test", body))


def api_versions(correlation_id: int, version: int = 3) -> bytes:
    return frame(API_VERSIONS, version, correlation_id, {"client_software_name": "t", "client_software_version": "1"})


def long_poll_fetch(correlation_id: int, max_wait_ms: int = 10000) -> bytes:
    """A Fetch of the empty partition t-0 that waits for data (or max_wait_ms)."""
    return frame(FETCH, 11, correlation_id, {
        "max_wait_ms": max_wait_ms, "min_bytes": 1, "max_bytes": 1 << 20,
        "topics": [{"topic": "t", "partitions": [{"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}],
    })


async def append_to_t(server: Server) -> None:
    await server.broker.replicas.append_internal(
        "t", 0, build_batch([(None, b"v")], timestamps=int(time.time() * 1000)))


async def until(condition, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


async def settle() -> None:
    """Let every ready task and callback run."""
    for _ in range(5):
        await asyncio.sleep(0)


# --------------------------------------------------------------------------------------------- ordering, framing


async def test_a_response_waits_for_the_responses_of_earlier_requests(server):
    conn, transport = connect(server)
    feed(conn, long_poll_fetch(1) + api_versions(2))
    await until(lambda: len(conn.pending) == 2 and conn.pending[1].done())
    await asyncio.sleep(0.05)
    assert transport.written == b""  # ApiVersions is answered, but the Fetch before it is not yet
    await append_to_t(server)  # wakes the long poll
    await until(lambda: len(transport.responses()) == 2)
    assert transport.correlation_ids() == [1, 2]
    _, fetch = wire.decode_response(FETCH, 11, transport.responses()[0][1])
    assert fetch["responses"][0]["partitions"][0]["high_watermark"] == 1
    assert not transport.closed


def _split_whole(data: bytes) -> list[bytes]:
    return [data]


def _split_bytewise(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))]


def _split_mid_frame(data: bytes) -> list[bytes]:
    return [data[:7], data[7:len(data) // 2 + 3], data[len(data) // 2 + 3:]]


@pytest.mark.parametrize("split", [_split_whole, _split_bytewise, _split_mid_frame])
async def test_many_requests_in_one_read_and_one_request_across_reads(server, split):
    conn, transport = connect(server)
    data = b"".join(api_versions(cid) for cid in range(1, 21))
    for chunk in split(data):
        feed(conn, chunk)
    await until(lambda: len(transport.responses()) == 20)
    assert transport.correlation_ids() == list(range(1, 21))
    _, body = wire.decode_response(API_VERSIONS, 3, transport.responses()[0][1])
    assert body["error_code"] == 0 and body["api_keys"]


async def test_a_large_request_arriving_in_pieces(server):
    conn, transport = connect(server)
    big = frame(API_VERSIONS, 3, 1, {"client_software_name": "a" * 100_000, "client_software_version": "1"})
    data = big + api_versions(2)
    for start in range(0, len(data), 7000):
        feed(conn, data[start:start + 7000])
    await until(lambda: len(transport.responses()) == 2)
    assert transport.correlation_ids() == [1, 2]


# --------------------------------------------------------------------------------------------- back-pressure


async def test_reading_pauses_at_queued_max_requests_and_resumes_when_drained(make_server):
    server = await make_server(**{"queued.max.requests": 3})
    await server.broker.metadata.create_topic("t", 1, {})
    conn, transport = connect(server)
    feed(conn, long_poll_fetch(1) + api_versions(2))
    await settle()
    assert transport.reading and len(conn.pending) == 2  # the limit is three
    feed(conn, api_versions(3))
    await settle()
    assert not transport.reading  # the ApiVersions are answered but wait behind the Fetch: still queued
    await append_to_t(server)
    await until(lambda: len(transport.responses()) == 3)
    assert transport.reading
    assert transport.correlation_ids() == [1, 2, 3]


async def test_pause_writing_stops_reading_and_resume_writing_sends_what_waited(server):
    conn, transport = connect(server)
    conn.pause_writing()
    assert not transport.reading
    feed(conn, api_versions(1))  # already on its way when reading paused
    await asyncio.sleep(0.05)
    assert transport.written == b""  # the client is not reading: nothing is written
    assert not transport.reading
    conn.resume_writing()
    await until(lambda: transport.correlation_ids() == [1])
    await settle()
    assert transport.reading


# --------------------------------------------------------------------------------------------- bad input


def _with_size(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


BAD_FRAMES = {
    "oversize": struct.pack(">i", 104857600 + 1),  # socket.request.max.bytes + 1, closed before its body arrives
    "negative size": struct.pack(">i", -5),
    "unknown API key": _with_size(struct.pack(">hhih", 999, 0, 1, -1)),
    "unsupported Metadata version": _with_size(struct.pack(">hhih", METADATA, 99, 1, -1)),
    "shorter than a header": _with_size(b"\x00\x03"),
    "truncated body": _with_size(frame(METADATA, 8, 1, {"topics": [{"name": "t"}]})[4:-1]),
    "trailing garbage": _with_size(frame(METADATA, 8, 1, {"topics": None})[4:] + b"\x00"),
}


@pytest.mark.parametrize("bad", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
async def test_a_bad_frame_closes_the_connection(server, bad):
    conn, transport = connect(server)
    feed(conn, bad + api_versions(2))
    await settle()
    assert transport.aborted
    assert transport.written == b""  # nothing after the bad frame is served either
    assert conn not in server.connections


async def test_api_versions_of_an_unsupported_version_is_answered_in_v0_and_the_connection_stays(server):
    conn, transport = connect(server)
    feed(conn, _with_size(struct.pack(">hhih", API_VERSIONS, 99, 7, -1) + b"\x00\x01\x02"))
    feed(conn, api_versions(8))
    await until(lambda: len(transport.responses()) == 2)
    (cid, first), (_, second) = transport.responses()
    _, body = wire.decode_response(API_VERSIONS, 0, first)
    assert cid == 7
    assert body["error_code"] == ErrorCode.UNSUPPORTED_VERSION == 35
    assert {"api_key": API_VERSIONS, "min_version": 0, "max_version": 4} in body["api_keys"]
    assert wire.decode_response(API_VERSIONS, 3, second)[1]["error_code"] == 0
    assert not transport.closed


async def test_a_handler_that_raises_closes_its_connection_only(server, monkeypatch):
    async def broken(ctx, request):
        raise RuntimeError("boom")

    monkeypatch.setitem(HANDLERS, METADATA, broken)
    victim, victim_transport = connect(server)
    bystander, bystander_transport = connect(server)
    feed(victim, frame(METADATA, 8, 1, {"topics": None}) + api_versions(2))
    await until(lambda: victim_transport.closed)
    assert victim_transport.aborted and victim_transport.written == b""
    feed(bystander, api_versions(1))
    await until(lambda: bystander_transport.correlation_ids() == [1])
    await settle()
    assert victim not in server.connections and bystander in server.connections


# --------------------------------------------------------------------------------------------- limits


async def test_idle_connections_are_closed_after_connections_max_idle_ms(make_server):
    server = await make_server(**{"connections.max.idle.ms": 200})
    await server.broker.metadata.create_topic("t", 1, {})
    idle, idle_transport = connect(server)
    busy, busy_transport = connect(server)
    feed(busy, long_poll_fetch(1, max_wait_ms=2000))  # waiting for data is not idle
    started = time.monotonic()
    await until(lambda: idle_transport.closed, timeout=2)
    assert 0.2 <= time.monotonic() - started < 1.0
    assert not busy_transport.closed


async def test_connections_beyond_max_connections_are_refused(make_server):
    server = await make_server(**{"max.connections": 2})
    first, _ = connect(server)
    second, second_transport = connect(server)
    third, third_transport = connect(server)
    assert third_transport.aborted and third not in server.connections
    assert not second_transport.closed
    first.close("test")
    await settle()
    fourth, fourth_transport = connect(server)
    assert not fourth_transport.closed and fourth in server.connections
    feed(fourth, api_versions(1))
    await until(lambda: fourth_transport.correlation_ids() == [1])


# --------------------------------------------------------------------------------------------- stop


async def test_stop_answers_requests_in_flight_then_closes_gently(server):
    conn, transport = connect(server)
    feed(conn, long_poll_fetch(1, max_wait_ms=300))
    await settle()
    stopping = asyncio.ensure_future(server.stop())
    await settle()
    feed(conn, api_versions(2))  # arrives after stop began: not served
    await asyncio.wait_for(stopping, 5)
    assert transport.correlation_ids() == [1]  # the long poll ran to its max_wait and was answered
    assert transport.closed and not transport.aborted  # close() sends what was written first
    assert server.stopped.is_set()
