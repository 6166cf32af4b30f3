"""A minimal blocking Kafka client over a raw socket, for tests that send exact bytes."""

from __future__ import annotations

import socket
import struct

from kafkalite.protocol import wire
from kafkalite.protocol.messages import APIS_BY_NAME


class RawClient:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.correlation_id = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send_frame(self, payload: bytes) -> None:
        self.sock.sendall(payload)

    def read_frame(self) -> bytes | None:
        """The next response frame without its size, or None when the broker closed the connection."""
        head = self._read_exactly(4)
        if head is None:
            return None
        (size,) = struct.unpack(">i", head)
        return self._read_exactly(size)

    def _read_exactly(self, n: int) -> bytes | None:
        chunks = bytearray()
        while len(chunks) < n:
            try:
                data = self.sock.recv(n - len(chunks))
            except ConnectionResetError:
                return None
            if not data:
                return None
            chunks += data
        return bytes(chunks)

    def encode(self, api: str, version: int, body: dict) -> bytes:
        self.correlation_id += 1
        return wire.join(wire.encode_request(APIS_BY_NAME[api].key, version, self.correlation_id, "raw", body))

    def request(self, api: str, version: int, body: dict) -> dict:
        self.send_frame(self.encode(api, version, body))
        frame = self.read_frame()
        assert frame is not None, f"the broker closed the connection instead of answering {api} v{version}"
        correlation_id, response = wire.decode_response(APIS_BY_NAME[api].key, version, memoryview(frame))
        assert correlation_id == self.correlation_id
        return response

    def is_closed_by_peer(self) -> bool:
        """True when the broker has closed the connection (reads end-of-file)."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
