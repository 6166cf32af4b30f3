"""`kafkalite nc`: a netcat for the Kafka protocol. Requests go in as JSON lines, responses come out as
JSON lines (see `kafkalite nc --help` for the notation). Built on kafkalite.protocol alone, with a
plain blocking socket: one request at a time, which is what a person debugging wants."""

from __future__ import annotations

import collections
import difflib
import json
import socket
import struct
import sys
import time

from kafkalite.protocol.api_keys import ApiKey
from kafkalite.protocol import compression
from kafkalite.protocol.errors import DecodeError, ErrorCode
from kafkalite.protocol.framing import FrameSplitter
from kafkalite.protocol.messages import APIS, APIS_BY_NAME
from kafkalite.protocol.record_batch import build_batch
from kafkalite.protocol.schema import ApiSchema, Array, Field, Struct, in_versions
from kafkalite.protocol.wire import API_VERSIONS_KEY, decode_request_header, decode_response, encode_request, join
from kafkalite.tools.common import Exit, ToolError, default_bootstrap
from kafkalite.tools.render import bytes_from_json, message_json, uuid_from_text

CLIENT_ID = "kafkalite-nc"
PRODUCE_KEY = ApiKey.PRODUCE
_INT_RANGES = {"int8": 8, "int16": 16, "int32": 32, "int64": 64, "uint16": 16, "uint32": 32}


class BadRequest(ValueError):
    """A request line that cannot be sent; the message says why and how to fix it."""


# ----------------------------------------------------------------------------- JSON to request


def find_api(name) -> ApiSchema:
    if isinstance(name, int) and not isinstance(name, bool):
        if name in APIS:
            return APIS[name]
        raise BadRequest(f"unknown API key {name}; kafkalite knows keys {', '.join(map(str, APIS))}")
    if not isinstance(name, str):
        raise BadRequest(f'"api" must be an API name such as "Metadata" (or its key number), not {name!r}')
    lowered = {n.lower(): api for n, api in APIS_BY_NAME.items()}
    api = APIS_BY_NAME.get(name) or lowered.get(name.lower().replace("_", "").replace("-", ""))
    if api is not None:
        return api
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(lowered[c].name for c in close)}?" if close else \
        f"; known APIs: {', '.join(sorted(APIS_BY_NAME))}"
    raise BadRequest(f"unknown API {name!r}{hint}")


def parse_request_line(line: str) -> tuple[ApiSchema, int | None, dict]:
    """A JSON request, or a bare API name, as (api, version or None, body)."""
    text = line.strip()
    if not text.startswith("{"):
        return find_api(text), None, {}
    try:
        request = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadRequest(f"not valid JSON ({e.msg} at column {e.colno}): {text[:80]}") from None
    unknown = set(request) - {"api", "version", "body"}
    if unknown:
        raise BadRequest(f"unknown key(s) {', '.join(sorted(unknown))}; a request has "
                         '"api", optionally "version" and "body"')
    if "api" not in request:
        raise BadRequest('the request has no "api" (for example {"api": "ApiVersions"})')
    api = find_api(request["api"])
    version = request.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise BadRequest(f'"version" must be a number, not {version!r}')
    if version is not None and not api.min_version <= version <= api.max_version:
        raise BadRequest(f"kafkalite speaks {api.name} versions {api.min_version}-{api.max_version}, "
                         f"not {version}")
    body = request.get("body") or {}
    if not isinstance(body, dict):
        raise BadRequest(f'"body" must be a JSON object, not {body!r}')
    return api, version, body


def body_from_json(fields: tuple[Field, ...], version: int, value: dict, where: str) -> dict:
    """Check a JSON body against the schema of one version and convert uuids, bytes and records.
    Absent fields stay absent: the encoder uses their defaults."""
    present = {f.name: f for f in fields if in_versions(f.versions, version)}
    out = {}
    for name, v in value.items():
        f = present.get(name)
        if f is None:
            every = {f.name for f in fields}
            if name in every:
                raise BadRequest(f"{where}{name} does not exist in version {version}")
            close = difflib.get_close_matches(name, list(present), n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; fields: {', '.join(present) or 'none'}"
            raise BadRequest(f"{where}{name} is not a field of this message{hint}")
        out[name] = _value_from_json(f, f.type, version, v, f"{where}{name}")
    return out


def _value_from_json(f: Field, t, version: int, v, where: str):
    if v is None:
        if in_versions(f.nullable, version):
            return None
        raise BadRequest(f"{where} cannot be null in version {version}")
    try:
        if isinstance(t, Struct):
            if not isinstance(v, dict):
                raise BadRequest(f"{where} must be an object")
            return body_from_json(t.fields, version, v, f"{where}.")
        if isinstance(t, Array):
            if not isinstance(v, list):
                raise BadRequest(f"{where} must be a list")
            if isinstance(t.of, tuple):
                return [_value_from_json(f, Struct(t.of), version, item, f"{where}[{i}]")
                        for i, item in enumerate(v)]
            item_field = Field(f.name, t.of)
            return [_value_from_json(item_field, t.of, version, item, f"{where}[{i}]") for i, item in enumerate(v)]
        if t == "bool":
            if not isinstance(v, bool):
                raise BadRequest(f"{where} must be true or false, not {v!r}")
            return v
        if t in _INT_RANGES:
            if not isinstance(v, int) or isinstance(v, bool):
                raise BadRequest(f"{where} must be an integer, not {v!r}")
            bits = _INT_RANGES[t]
            low, high = (0, 2**bits - 1) if t.startswith("u") else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
            if not low <= v <= high:
                raise BadRequest(f"{where} = {v} does not fit in an {t}")
            return v
        if t == "float64":
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise BadRequest(f"{where} must be a number, not {v!r}")
            return float(v)
        if t == "string":
            if not isinstance(v, str):
                raise BadRequest(f"{where} must be a string, not {v!r}")
            return v
        if t == "uuid":
            return uuid_from_text(v, where)
        if t == "bytes":
            return bytes_from_json(v, where)
        if t == "records":
            return records_from_json(v, where)
    except ValueError as e:
        if isinstance(e, BadRequest):
            raise
        raise BadRequest(str(e)) from None
    raise BadRequest(f"{where}: unknown field type {t!r}")


def records_from_json(v, where: str) -> bytes:
    """A records field: a list of {"key", "value", "headers"} records (one batch), one object
    {"records": [...], "compression": "gzip"}, or raw bytes as {"hex": ...}."""
    codec = compression.NONE
    if isinstance(v, dict) and "records" in v:
        name = v.get("compression", "none")
        if name not in compression.BY_NAME:
            raise BadRequest(f"{where}.compression must be one of {', '.join(compression.BY_NAME)}")
        codec = compression.BY_NAME[name]
        v = v["records"]
    if not isinstance(v, list):
        return bytes_from_json(v, where)
    if not v:
        raise BadRequest(f"{where} needs at least one record (or null)")
    records = []
    for i, r in enumerate(v):
        here = f"{where}[{i}]"
        if not isinstance(r, dict):
            r = {"value": r}
        unknown = set(r) - {"key", "value", "headers"}
        if unknown:
            raise BadRequest(f"{here} has unknown key(s) {', '.join(sorted(unknown))}; "
                             'a record has "key", "value" and "headers"')
        headers = r.get("headers") or {}
        pairs = headers.items() if isinstance(headers, dict) else headers
        records.append((bytes_from_json(r.get("key"), f"{here}.key"), bytes_from_json(r.get("value"), f"{here}.value"),
                        [(str(k), bytes_from_json(hv, f"{here}.headers.{k}")) for k, hv in pairs]))
    return build_batch(records, timestamps=int(time.time() * 1000), codec=codec)


# ----------------------------------------------------------------------------- the connection


def parse_address(text: str) -> tuple[str, int] | None:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host or text.startswith("{"):
        return None
    return host.strip("[]"), int(port)


class Session:
    """One connection to a broker, sending one request at a time."""

    def __init__(self, host: str, port: int, timeout: float, show_hex: bool):
        self.address = f"{host}:{port}"
        self.timeout = timeout
        self.show_hex = show_hex
        self.correlation_id = 0
        self.splitter = FrameSplitter()
        self._received: collections.deque[bytes] = collections.deque()
        self._broker_versions: dict[int, tuple[int, int]] | None = None
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except ConnectionRefusedError:
            raise ToolError(f"cannot connect to {self.address}: connection refused; is the broker running?",
                            Exit.UNREACHABLE) from None
        except socket.gaierror as e:
            raise ToolError(f"cannot connect to {self.address}: cannot resolve the host name ({e.strerror})",
                            Exit.UNREACHABLE) from None
        except (TimeoutError, socket.timeout):
            raise ToolError(f"cannot connect to {self.address}: timed out", Exit.UNREACHABLE) from None
        except OSError as e:
            raise ToolError(f"cannot connect to {self.address}: {e.strerror or e}", Exit.UNREACHABLE) from None

    def close(self) -> None:
        self.sock.close()

    def next_correlation_id(self) -> int:
        self.correlation_id += 1
        return self.correlation_id

    def send_frame(self, frame: bytes) -> None:
        if self.show_hex:
            print(f"> {frame.hex()}", file=sys.stderr, flush=True)
        try:
            self.sock.sendall(frame)
        except OSError as e:
            raise ToolError(f"the connection to {self.address} broke: {e.strerror or e}", Exit.UNREACHABLE) from None

    def read_frame(self, what: str) -> bytes:
        """The next response frame, without its size prefix."""
        while not self._received:
            try:
                data = self.sock.recv(1 << 16)
            except (TimeoutError, socket.timeout):
                raise ToolError(f"no response to {what} from {self.address} within {self.timeout:g}s",
                                Exit.TIMED_OUT) from None
            except OSError as e:
                raise ToolError(f"the connection to {self.address} broke: {e.strerror or e}",
                                Exit.UNREACHABLE) from None
            if not data:
                raise ToolError(f"{self.address} closed the connection without answering {what}"
                                " (a broker does that when it cannot parse a request)", Exit.UNREACHABLE)
            self._received.extend(bytes(f) for f in self.splitter.feed(data))
        frame = self._received.popleft()
        if self.show_hex:
            print(f"< {struct.pack('>i', len(frame)).hex()}{frame.hex()}", file=sys.stderr, flush=True)
        return frame

    def exchange(self, api: ApiSchema, version: int, body: dict) -> dict:
        """Send one request; return the printable response."""
        correlation_id = self.next_correlation_id()
        try:
            frame = join(encode_request(api.key, version, correlation_id, CLIENT_ID, body))
        except (struct.error, TypeError, AttributeError, ValueError) as e:
            raise BadRequest(f"cannot encode {api.name} v{version}: {e}") from None
        self.send_frame(frame)
        if api.key == PRODUCE_KEY and body.get("acks") == 0:
            return {"api": api.name, "version": version, "correlation_id": correlation_id, "body": None,
                    "note": "acks=0: the broker sends no response"}
        return self.decode(api.key, version, self.read_frame(f"{api.name} v{version}"))

    def decode(self, api_key: int, version: int, frame: bytes) -> dict:
        api = APIS[api_key]
        if api_key == API_VERSIONS_KEY and version > 0 and len(frame) >= 6 and \
                struct.unpack_from(">h", frame, 4)[0] == ErrorCode.UNSUPPORTED_VERSION:
            version = 0  # the broker answers an ApiVersions version it does not know in the v0 layout
        try:
            correlation_id, body = decode_response(api_key, version, memoryview(frame))
        except DecodeError as e:
            return {"api": api.name, "version": version, "decode_error": str(e), "hex": frame.hex()}
        return {"api": api.name, "version": version, "correlation_id": correlation_id, "body": message_json(body)}

    def broker_versions(self) -> dict[int, tuple[int, int]]:
        """The broker's version range per API key, asked once with ApiVersions."""
        if self._broker_versions is None:
            api = APIS[API_VERSIONS_KEY]
            response = self.exchange(api, api.max_version, {"client_software_name": CLIENT_ID,
                                                            "client_software_version": "1"})
            body = response.get("body") or {}
            if body.get("error_code") == ErrorCode.UNSUPPORTED_VERSION:
                response = self.exchange(api, 0, {})
                body = response.get("body") or {}
            self._broker_versions = {a["api_key"]: (a["min_version"], a["max_version"])
                                     for a in body.get("api_keys", [])}
        return self._broker_versions

    def choose_version(self, api: ApiSchema) -> int:
        low, high = self.broker_versions().get(api.key, (None, None))
        if low is None:
            raise BadRequest(f"the broker at {self.address} does not list {api.name} in its ApiVersions; "
                             'give a "version" to send it anyway')
        top = min(high, api.max_version)
        if top < max(low, api.min_version):
            raise BadRequest(f"the broker speaks {api.name} v{low}-{high} and kafkalite v{api.min_version}-"
                             f"{api.max_version}: no version in common")
        return top

    def send_json(self, line: str) -> dict:
        api, version, body = parse_request_line(line)
        if version is None:
            version = self.choose_version(api)
        try:
            converted = body_from_json(api.request, version, body, "")
        except BadRequest as e:
            raise BadRequest(f"{api.name} v{version} request: {e}") from None
        return self.exchange(api, version, converted)

    def send_raw(self, text: str) -> dict:
        try:
            frame = bytes.fromhex("".join(text.split()))
        except ValueError:
            raise BadRequest(f"--raw {text[:40]!r} is not hex") from None
        if len(frame) >= 4 and struct.unpack_from(">i", frame)[0] != len(frame) - 4:
            frame = struct.pack(">i", len(frame)) + frame  # no size prefix given: add it
        try:
            header, api, _ = decode_request_header(memoryview(frame)[4:])
        except DecodeError as e:
            # Still send it: seeing how the broker reacts to a bad frame is the point of --raw.
            self.send_frame(frame)
            note = f"kafkalite cannot read this request's header ({e}); sent anyway"
            return {"note": note, "hex": self.read_frame("the raw frame").hex()}
        self.send_frame(frame)
        response = self.read_frame(f"the raw {APIS[header.api_key].name if header.api_key in APIS else 'request'}")
        if api is None and header.api_key != API_VERSIONS_KEY:
            return {"api_key": header.api_key, "version": header.api_version, "hex": response.hex()}
        return self.decode(header.api_key, header.api_version, response)


def _requests(args) -> tuple[str, list[str] | None]:
    """The broker's address and the request arguments (None: read stdin)."""
    positional = list(args.requests)
    address = args.bootstrap
    if positional and parse_address(positional[0]):  # never a request: API names and JSON have no "host:port"
        address = positional.pop(0)
    return address or default_bootstrap(), positional or None


async def nc(args) -> int:
    address, requests = _requests(args)
    target = parse_address(address)
    if target is None:
        raise ToolError(f"{address!r} is not HOST:PORT", Exit.USAGE)
    session = Session(*target, timeout=args.timeout, show_hex=args.hex)
    bad_lines = 0
    try:
        for raw in args.raw or ():
            try:
                _print(session.send_raw(raw))
            except BadRequest as e:
                print(f"kafkalite nc: {e}", file=sys.stderr)
                bad_lines += 1
        if args.raw and requests is None:
            return Exit.USAGE if bad_lines else Exit.OK
        lines = requests if requests is not None else sys.stdin
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                _print(session.send_json(line))
            except BadRequest as e:
                where = f"argument {number}" if requests is not None else f"line {number}"
                print(f"kafkalite nc: {where}: {e}", file=sys.stderr)
                bad_lines += 1
    finally:
        session.close()
    return Exit.USAGE if bad_lines else Exit.OK


nc.blocks_the_loop = True  # synchronous sockets and stdin: Ctrl-C interrupts it where it is


def _print(response: dict) -> None:
    print(json.dumps(response, ensure_ascii=False), flush=True)
