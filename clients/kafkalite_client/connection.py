"""One TCP connection to one broker: pipelined requests matched to responses by correlation id.

On connect the client sends ApiVersions and, for every API, settles on the highest version that
both sides speak. Callers then send request bodies (dicts with the snake_case field names of
kafkalite.protocol.messages) and get decoded response bodies back.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct

from kafkalite.protocol.api_keys import ApiKey
from kafkalite.protocol.errors import DecodeError, ErrorCode
from kafkalite.protocol.framing import FrameSplitter
from kafkalite.protocol.messages import APIS
from kafkalite.protocol.wire import decode_response, encode_request

from kafkalite_client._aio import with_timeout
from kafkalite_client.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    UnsupportedVersionByBroker,
)

API_VERSIONS = ApiKey.API_VERSIONS
_CORRELATION = struct.Struct(">i")
_ERROR_AT_4 = struct.Struct(">h")
_READ_CHUNK = 1 << 18
_WRITE_HIGH_WATER = 1 << 20
CLIENT_SOFTWARE = ("kafkalite-client", "0.1.0")


def describe_os_error(e: BaseException) -> str:
    """An OSError as the end of a sentence: 'connection refused', 'name or service not known'."""
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.gaierror):
        return f"cannot resolve the host name ({e.strerror or e})"
    if isinstance(e, (asyncio.TimeoutError, TimeoutError)):
        return "timed out"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror[0].lower() + e.strerror[1:]
    return str(e) or type(e).__name__


# Versions of the shared schemas a client never sends: AddPartitionsToTxn v4+ is the batched form partition
# leaders send the transaction coordinator (KIP-890), as Kafka's own client stops at 3.
CLIENT_MAX_VERSION = {ApiKey.ADD_PARTITIONS_TO_TXN: 3}


def choose_versions(broker_ranges: dict[int, tuple[int, int]]) -> dict[int, int]:
    """For each API both sides speak, the highest version in both ranges (and in a client's)."""
    chosen = {}
    for key, (low, high) in broker_ranges.items():
        api = APIS.get(key)
        if api is None:
            continue
        top = min(high, api.max_version, CLIENT_MAX_VERSION.get(key, api.max_version))
        if top >= max(low, api.min_version):
            chosen[key] = top
    return chosen


class Connection:
    def __init__(self, host: str, port: int, *, client_id: str | None = "kafkalite-client",
                 request_timeout: float = 30.0, node_id: int | None = None):
        self.host = host
        self.port = port
        self.node_id = node_id
        self.client_id = client_id
        self.request_timeout = request_timeout
        self.versions: dict[int, int] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._read_task: asyncio.Task | None = None
        self._pending: dict[int, tuple[int, int, asyncio.Future]] = {}
        self._ids = itertools.count(1)
        self._closed_reason: str | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._writer is not None and self._closed_reason is None

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def connect(self, timeout: float | None = None) -> "Connection":
        timeout = self.request_timeout if timeout is None else timeout
        try:
            self._reader, self._writer = await with_timeout(asyncio.open_connection(self.host, self.port), timeout)
        except (OSError, asyncio.TimeoutError) as e:
            raise KafkaConnectionError(f"cannot connect to {self.address}: {describe_os_error(e)}") from None
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._read_task = asyncio.get_running_loop().create_task(self._read_loop())
        try:
            await self._negotiate()
        except BaseException:
            self.close()
            raise
        return self

    async def _negotiate(self) -> None:
        # v3 first (flexible); a broker that does not know it answers in v0 with UNSUPPORTED_VERSION.
        body = {"client_software_name": CLIENT_SOFTWARE[0], "client_software_version": CLIENT_SOFTWARE[1]}
        response = await self.request(API_VERSIONS, body, version=3)
        if response["error_code"] == ErrorCode.UNSUPPORTED_VERSION:
            response = await self.request(API_VERSIONS, {}, version=0)
        if response["error_code"]:
            raise KafkaConnectionError(
                f"broker {self.address} refused ApiVersions with error code {response['error_code']}")
        ranges = {a["api_key"]: (a["min_version"], a["max_version"]) for a in response["api_keys"]}
        self.versions = choose_versions(ranges)

    def version(self, api_key: int) -> int:
        try:
            return self.versions[api_key]
        except KeyError:
            name = APIS[api_key].name if api_key in APIS else str(api_key)
            raise UnsupportedVersionByBroker(
                f"broker {self.address} supports no version of {name} that this client speaks") from None

    def _write(self, api_key: int, version: int, body: dict, expect_response: bool) -> asyncio.Future | None:
        if self._closed_reason is not None:
            raise KafkaConnectionError(self._closed_reason)
        correlation_id = next(self._ids) & 0x7FFFFFFF
        parts = encode_request(api_key, version, correlation_id, self.client_id, body)
        future = None
        if expect_response:
            future = asyncio.get_running_loop().create_future()
            self._pending[correlation_id] = (api_key, version, future)
        self._writer.writelines(parts)
        return future

    async def request(self, api_key: int, body: dict, *, version: int | None = None,
                      timeout: float | None = None, expect_response: bool = True) -> dict | None:
        """Send one request and wait for its response body. `expect_response=False` is for
        Produce with acks=0, which the broker never answers."""
        if version is None:
            version = self.version(api_key)
        future = self._write(api_key, version, body, expect_response)
        if self._writer.transport.get_write_buffer_size() > _WRITE_HIGH_WATER:
            try:
                await self._writer.drain()
            except (OSError, RuntimeError) as e:
                self._fail(f"connection to {self.address} broke: {describe_os_error(e)}")
        if future is None:
            return None
        timeout = self.request_timeout if timeout is None else timeout
        try:
            return await with_timeout(future, timeout)
        except TimeoutError:
            # Kafka clients close a connection on which a request timed out: its later responses are suspect.
            name = APIS[api_key].name
            self._fail(f"connection to {self.address} closed after a {name} request timed out")
            raise KafkaTimeoutError(f"{name} request to {self.address} got no response within {timeout:g}s") from None

    async def _read_loop(self) -> None:
        splitter = FrameSplitter()
        reason = f"connection to {self.address} was closed by the broker"
        try:
            while True:
                data = await self._reader.read(_READ_CHUNK)
                if not data:
                    break
                for frame in splitter.feed(data):
                    self._dispatch(frame)
        except asyncio.CancelledError:
            reason = f"connection to {self.address} was closed"
        except (OSError, DecodeError, ValueError) as e:
            reason = f"connection to {self.address} broke: {describe_os_error(e)}"
        self._fail(reason)

    def _dispatch(self, frame: memoryview) -> None:
        (correlation_id,) = _CORRELATION.unpack_from(frame, 0)
        entry = self._pending.pop(correlation_id, None)
        if entry is None:
            raise DecodeError(f"response with unknown correlation id {correlation_id}")
        api_key, version, future = entry
        if future.done():
            return
        try:
            if api_key == API_VERSIONS and version > 0 and _ERROR_AT_4.unpack_from(frame, 4)[0] == 35:
                version = 0  # an unsupported ApiVersions version is answered in the v0 layout
            _, body = decode_response(api_key, version, frame)
        except DecodeError as e:
            future.set_exception(KafkaConnectionError(
                f"cannot decode a {APIS[api_key].name} v{version} response from {self.address}: {e}"))
            return
        future.set_result(body)

    def _fail(self, reason: str) -> None:
        if self._closed_reason is None:
            self._closed_reason = reason
        pending, self._pending = self._pending, {}
        for _, _, future in pending.values():
            if not future.done():
                future.set_exception(KafkaConnectionError(reason))
        if self._writer is not None:
            self._writer.close()
        if self._read_task is not None and self._read_task is not asyncio.current_task():
            self._read_task.cancel()

    def close(self) -> None:
        self._fail(f"connection to {self.address} was closed")

    def __repr__(self) -> str:
        return f"<Connection node={self.node_id} {self.address}{'' if self.connected else ' closed'}>"
