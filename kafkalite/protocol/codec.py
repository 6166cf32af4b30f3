"""The engine: turns message declarations into Python encoder and decoder functions.

For each (API, version, request or response) it generates the source of one function per struct
and compiles it once, so decoding runs straight-line code instead of interpreting field lists.

Decoded messages are dicts keyed by the declared snake_case names. Every field the schema has is
present, filled with its default when the version lacks it, so handlers need not test versions.
Records fields decode to memoryview slices of the frame: batch bytes are never copied.

Encoders write into one bytearray; a records value (bytes, memoryview, or a list of buffers such as
file regions) is not copied in but spliced: `encode_*` return a list of buffers for writelines().
"""

from __future__ import annotations

import functools
import struct
import uuid
from typing import Any

from kafkalite.protocol.errors import DecodeError
from kafkalite.protocol.primitives import ZERO_UUID, read_uvarint, write_uvarint
from kafkalite.protocol.schema import MISSING, ApiSchema, Array, DataSchema, Field, Struct, in_versions

_FIXED = {
    "int8": (">b", 1),
    "int16": (">h", 2),
    "int32": (">i", 4),
    "int64": (">q", 8),
    "uint16": (">H", 2),
    "uint32": (">I", 4),
    "float64": (">d", 8),
    "bool": (">?", 1),
}

# Names the generated code refers to.
_NAMESPACE: dict[str, Any] = {
    "DecodeError": DecodeError,
    "_uvarint": read_uvarint,
    "_wuv": write_uvarint,
    "_UUID": uuid.UUID,
    "_ZERO_UUID": ZERO_UUID,
    "_bytes": bytes,
    "_str": str,
    "_len": len,
    "_range": range,
    "_sum": sum,
    "_isbuf": lambda v: isinstance(v, (bytes, bytearray, memoryview)),
}
for _type, (_fmt, _size) in _FIXED.items():
    _NAMESPACE[f"_u_{_type}"] = struct.Struct(_fmt).unpack_from
    _NAMESPACE[f"_p_{_type}"] = struct.Struct(_fmt).pack


def default_value(f: Field) -> Any:
    """The value a field takes when a version lacks it, or an encoder is not given it."""
    if f.default is not MISSING:
        return f.default
    t = f.type
    if isinstance(t, Array):
        return []
    if isinstance(t, Struct):
        return {sub.name: default_value(sub) for sub in t.fields}
    if t in _FIXED:
        return False if t == "bool" else 0
    if t == "string":
        return ""
    if t == "bytes":
        return b""
    if t == "records":
        return None
    if t == "uuid":
        return ZERO_UUID
    raise ValueError(f"unknown type {t!r}")


def _is_literal(value: Any) -> bool:
    """True when repr(value) is Python source that rebuilds an equal value: numbers, strings, bytes, booleans
    and None in lists and dicts."""
    if isinstance(value, list):
        return all(_is_literal(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_literal(v) for k, v in value.items())
    if isinstance(value, float):
        return value == value and abs(value) != float("inf")  # nan and inf have no literal
    return value is None or isinstance(value, (int, str, bytes, bool))


def _min_size(fields: tuple[Field, ...], version: int, flexible: bool) -> int:
    """The fewest bytes one struct can take on the wire: bounds array counts before allocating."""
    size = 1 if flexible else 0  # the tag section count
    for f in fields:
        if not in_versions(f.versions, version) or (flexible and in_versions(f.tagged, version)):
            continue
        t = f.type
        if isinstance(t, Array):
            size += 1 if flexible else 4
        elif isinstance(t, Struct):
            size += _min_size(t.fields, version, flexible)
        elif t in _FIXED:
            size += _FIXED[t][1]
        elif t == "uuid":
            size += 16
        elif t == "string":
            size += 1 if flexible else 2
        else:
            size += 1 if flexible else 4
    return size


class _Generator:
    """Writes the source of the encoder and decoder functions of one message version."""

    def __init__(self, version: int, flexible: bool, label: str):
        self.version = version
        self.flexible = flexible
        self.label = label
        self.functions: list[str] = []
        self.constants: dict[str, Any] = {}
        self.count = 0

    def _name(self, prefix: str) -> str:
        self.count += 1
        return f"_{prefix}{self.count}"

    def _constant(self, value: Any) -> str:
        name = self._name("c")
        self.constants[name] = value
        return name

    def _present(self, f: Field) -> bool:
        return in_versions(f.versions, self.version)

    def _is_tagged(self, f: Field) -> bool:
        return self.flexible and f.tag is not None and in_versions(f.tagged, self.version)

    def _nullable(self, f: Field) -> bool:
        return in_versions(f.nullable, self.version)

    # ---------------------------------------------------------------- decoding

    def decoder(self, fields: tuple[Field, ...]) -> str:
        """Generate `def name(buf, pos, n) -> (dict, pos)` for a struct; return its name."""
        name = self._name("dec")
        body: list[str] = []
        tagged: list[Field] = []
        for f in fields:
            if not self._present(f):
                body.append(f"d[{f.name!r}] = {self._default_expr(f)}")
            elif self._is_tagged(f):
                tagged.append(f)
                body.append(f"d[{f.name!r}] = {self._default_expr(f)}")
            else:
                body.extend(self._decode_value(f, f.type, f"d[{f.name!r}]"))
        if self.flexible:
            body.extend(self._decode_tags(tagged))
        src = [f"def {name}(buf, pos, n):", "    d = {}"]
        src += ["    " + line for line in body]
        src.append("    return d, pos")
        self.functions.append("\n".join(src))
        return name

    def _default_expr(self, f: Field) -> str:
        value = default_value(f)
        if isinstance(value, (list, dict)):
            # A fresh object each time: decoded messages are mutable and must not share defaults. A literal
            # (the usual case: a struct of numbers) builds one per evaluation, several times faster than deepcopy.
            if _is_literal(value):
                return repr(value)
            return f"__import__('copy').deepcopy({self._constant(value)})"
        if isinstance(value, (int, float, str, bytes, bool)) or value is None:
            return repr(value)
        return self._constant(value)

    def _decode_value(self, f: Field, t, target: str) -> list[str]:
        """Lines that decode one value of type t at buf[pos:] into `target`, advancing pos."""
        nullable = self._nullable(f)
        if isinstance(t, Struct):
            fn = self.decoder(t.fields)
            return [f"{target}, pos = {fn}(buf, pos, n)"]
        if isinstance(t, Array):
            return self._decode_array(f, t, target, nullable)
        if t in _FIXED:
            return [f"{target} = _u_{t}(buf, pos)[0]", f"pos += {_FIXED[t][1]}"]
        if t == "uuid":
            return [
                "if pos + 16 > n: raise DecodeError('uuid runs past the end')",
                f"{target} = _UUID(bytes=_bytes(buf[pos:pos + 16]))",
                "pos += 16",
            ]
        if t in ("string", "bytes", "records"):
            lines = self._decode_length(t, "ln", nullable)
            if t == "string":
                convert = "_str(buf[pos:pos + ln], 'utf-8')"
            elif t == "bytes":
                convert = "_bytes(buf[pos:pos + ln])"
            else:
                convert = "buf[pos:pos + ln]"
            null_branch = [f"    {target} = None"] if nullable else []
            if nullable:
                lines.append("if ln == -1:")
                lines += null_branch
                lines.append("else:")
                indent = "    "
            else:
                indent = ""
            lines += [
                f"{indent}if ln > n - pos: raise DecodeError('{self.label}: {f.name} length runs past the end')",
                f"{indent}{target} = {convert}",
                f"{indent}pos += ln",
            ]
            return lines
        raise ValueError(f"unknown type {t!r}")

    def _decode_length(self, t: str, var: str, nullable: bool) -> list[str]:
        """Read a string/bytes/array length into var (-1 means null); reject other negatives."""
        what = "string" if t == "string" else "length"
        if self.flexible:
            lines = [f"{var}, pos = _uvarint(buf, pos)", f"{var} -= 1"]
        else:
            width = "int16" if t == "string" else "int32"
            lines = [f"{var} = _u_{width}(buf, pos)[0]", f"pos += {_FIXED[width][1]}"]
        allowed = "-1" if nullable else "0"
        lines.append(f"if {var} < {allowed}: raise DecodeError('{self.label}: bad {what} {{}}'.format({var}))")
        return lines

    def _decode_array(self, f: Field, t: Array, target: str, nullable: bool) -> list[str]:
        cnt = self._name("n")
        item = self._name("v")
        lines = self._decode_length("array", cnt, nullable)
        if isinstance(t.of, tuple):
            per_item = max(1, _min_size(t.of, self.version, self.flexible))
            fn = self.decoder(t.of)
            loop = [f"    {item}, pos = {fn}(buf, pos, n)", f"    lst.append({item})"]
        else:
            # A primitive item has no tag section of its own: do not count one.
            per_item = max(1, _min_size((Field("x", t.of),), self.version, self.flexible) - self.flexible)
            inner = self._decode_value(Field(f.name, t.of), t.of, item)
            loop = ["    " + line for line in inner] + [f"    lst.append({item})"]
        # Check the claimed count against the bytes left before building anything.
        lines.append(
            f"if {cnt} * {per_item} > n - pos: "
            f"raise DecodeError('{self.label}: {f.name} count {{}} exceeds the bytes left'.format({cnt}))"
        )
        body = ["lst = []", f"for _ in _range({cnt}):"] + loop + [f"{target} = lst"]
        if nullable:
            return lines + [f"if {cnt} == -1:", f"    {target} = None", "else:"] + ["    " + b for b in body]
        return lines + body

    def _decode_tags(self, tagged: list[Field]) -> list[str]:
        lines = [
            "tags, pos = _uvarint(buf, pos)",
            f"if tags * 2 > n - pos: raise DecodeError('{self.label}: tag count exceeds the bytes left')",
            "last = -1",
            "for _ in _range(tags):",
            "    tag, pos = _uvarint(buf, pos)",
            f"    if tag <= last: raise DecodeError('{self.label}: tags out of order or repeated')",
            "    last = tag",
            "    size, pos = _uvarint(buf, pos)",
            f"    if size > n - pos: raise DecodeError('{self.label}: tagged field runs past the end')",
            "    end = pos + size",
        ]
        for f in tagged:
            fn = self._name("tag")
            # Each tagged field decodes within exactly its declared size.
            sub = [f"def {fn}(buf, pos, n):", "    d = {}"]
            sub += ["    " + line for line in self._decode_value(f, f.type, "v")]
            sub.append("    return v, pos")
            self.functions.append("\n".join(sub))
            lines += [
                f"    if tag == {f.tag}:",
                f"        d[{f.name!r}], p = {fn}(buf, pos, end)",
                f"        if p != end: raise DecodeError('{self.label}: tagged field {f.name} has a bad size')",
            ]
        lines.append("    pos = end")  # unknown tags are skipped
        return lines

    # ---------------------------------------------------------------- encoding

    def encoder(self, fields: tuple[Field, ...]) -> str:
        """Generate `def name(out, splices, d)` that appends a struct to bytearray out."""
        name = self._name("enc")
        body: list[str] = []
        tagged: list[Field] = []
        for f in fields:
            if not self._present(f):
                continue
            if self._is_tagged(f):
                tagged.append(f)
                continue
            value = self._constant(default_value(f))
            body.append(f"v = d.get({f.name!r}, {value})")
            body.extend(self._encode_value(f, f.type, "v", "out"))
        if self.flexible:
            body.extend(self._encode_tags(tagged))
        src = [f"def {name}(out, splices, d):"] + ["    " + line for line in body or ["pass"]]
        self.functions.append("\n".join(src))
        return name

    def _encode_value(self, f: Field, t, v: str, out: str) -> list[str]:
        nullable = self._nullable(f)
        if isinstance(t, Struct):
            fn = self.encoder(t.fields)
            return [f"{fn}({out}, splices, {v})"]
        if isinstance(t, Array):
            return self._encode_array(f, t, v, out, nullable)
        if t in _FIXED:
            return [f"{out} += _p_{t}({v})"]
        if t == "uuid":
            return [f"{out} += {v}.bytes"]
        if t == "string":
            enc = [f"b = {v}.encode('utf-8')"] + self._encode_length("string", "_len(b)", out) + [f"{out} += b"]
        elif t == "bytes":
            enc = self._encode_length("bytes", f"_len({v})", out) + [f"{out} += {v}"]
        elif t == "records":
            # Spliced, not copied: remember where the buffers go in the output.
            enc = [
                f"bufs = ({v},) if _isbuf({v}) else {v}",
                "size = _sum(_len(x) for x in bufs)",
                *self._encode_length("records", "size", out),
                f"splices.append((_len({out}), bufs))",
            ]
        else:
            raise ValueError(f"unknown type {t!r}")
        return self._null_guard(f, v, out, enc, nullable)

    def _null_guard(self, f: Field, v: str, out: str, enc: list[str], nullable: bool) -> list[str]:
        if not nullable:
            return enc
        null = [f"{out} += b'\\x00'"] if self.flexible else (
            [f"{out} += b'\\xff\\xff'"] if f.type == "string" else [f"{out} += b'\\xff\\xff\\xff\\xff'"]
        )
        return [f"if {v} is None:"] + ["    " + x for x in null] + ["else:"] + ["    " + x for x in enc]

    def _encode_length(self, t: str, length: str, out: str) -> list[str]:
        if self.flexible:
            return [f"_wuv({out}, {length} + 1)"]
        width = "int16" if t == "string" else "int32"
        return [f"{out} += _p_{width}({length})"]

    def _encode_array(self, f: Field, t: Array, v: str, out: str, nullable: bool) -> list[str]:
        item = self._name("v")
        if isinstance(t.of, tuple):
            fn = self.encoder(t.of)
            loop = [f"    {fn}({out}, splices, {item})"]
        else:
            loop = ["    " + line for line in self._encode_value(Field(f.name, t.of), t.of, item, out)]
        enc = self._encode_length("array", f"_len({v})", out) + [f"for {item} in {v}:"] + loop
        if not nullable:
            return enc
        null = [f"{out} += b'\\x00'"] if self.flexible else [f"{out} += b'\\xff\\xff\\xff\\xff'"]
        return [f"if {v} is None:"] + ["    " + x for x in null] + ["else:"] + ["    " + x for x in enc]

    def _encode_tags(self, tagged: list[Field]) -> list[str]:
        if not tagged:
            return ["out.append(0)"]
        lines = ["tagged = []"]
        for f in sorted(tagged, key=lambda x: x.tag):
            default = self._constant(default_value(f))
            lines += [
                f"v = d.get({f.name!r}, {default})",
                f"if v != {default}:",  # Kafka leaves tagged fields at their default off the wire
                "    t = bytearray()",
                *["    " + x for x in self._encode_value(f, f.type, "v", "t")],
                f"    tagged.append(({f.tag}, t))",
            ]
        lines += [
            "_wuv(out, _len(tagged))",
            "for tag, t in tagged:",
            "    _wuv(out, tag)",
            "    _wuv(out, _len(t))",
            "    out += t",
        ]
        return lines


class MessageCodec:
    """The compiled encoder and decoder of one message version."""

    __slots__ = ("_decode", "_encode", "label")

    def __init__(self, fields: tuple[Field, ...], version: int, flexible: bool, label: str):
        gen = _Generator(version, flexible, label)
        decode_name = gen.decoder(fields)
        encode_name = gen.encoder(fields)
        namespace = dict(_NAMESPACE)
        namespace.update(gen.constants)
        exec(compile("\n\n".join(gen.functions), f"<kafkalite codec {label}>", "exec"), namespace)
        self._decode = namespace[decode_name]
        self._encode = namespace[encode_name]
        self.label = label

    def decode(self, buf, pos: int = 0, end: int | None = None) -> tuple[dict, int]:
        """Decode one message from buf[pos:end]; return it and the position after it."""
        view = buf if isinstance(buf, memoryview) else memoryview(buf)
        n = len(view) if end is None else end
        try:
            return self._decode(view, pos, n)
        except DecodeError:
            raise
        except (struct.error, UnicodeDecodeError, ValueError, IndexError) as e:
            raise DecodeError(f"{self.label}: {e}") from e

    def encode_into(self, out: bytearray, splices: list, message: dict) -> None:
        self._encode(out, splices, message)


@functools.cache
def message_codec(api: ApiSchema, version: int, is_request: bool) -> MessageCodec:
    fields = api.request if is_request else api.response
    label = f"{api.name}{'Request' if is_request else 'Response'} v{version}"
    return MessageCodec(fields, version, api.is_flexible(version), label)


@functools.cache
def data_codec(schema: DataSchema, version: int) -> MessageCodec:
    """The fields of a data schema at one version (without the int16 version in front)."""
    return MessageCodec(schema.fields, version, schema.is_flexible(version), f"{schema.name} v{version}")


_VERSION = struct.Struct(">h")


def encode_data(schema: DataSchema, version: int, value: dict) -> bytes:
    """int16 version, then `value`'s fields at that version."""
    if not schema.min_version <= version <= schema.max_version:
        raise ValueError(f"{schema.name} has no version {version}")
    out = bytearray(_VERSION.pack(version))
    data_codec(schema, version).encode_into(out, [], value)
    return bytes(out)


def decode_data(schema: DataSchema, data, *, newer_as_latest: bool = False,
                short_as_older: bool = False) -> tuple[int, dict]:
    """The version and fields of an int16-versioned structure. Bytes after the fields are ignored.

    newer_as_latest: a version above the newest known is read as the newest (the consumer protocol promises
    that later versions only add fields at the end). short_as_older: data that does not decode at its version
    is tried at each older one in turn, so a sender that left out the fields its version adds at the end is
    still understood (as the consumer protocol readers kafkalite had before were lenient).
    """
    view = data if isinstance(data, memoryview) else memoryview(data)
    if len(view) < 2:
        raise DecodeError(f"{schema.name}: no version")
    (version,) = _VERSION.unpack_from(view, 0)
    read_as = min(version, schema.max_version) if newer_as_latest else version
    if not schema.min_version <= read_as <= schema.max_version:
        raise DecodeError(f"{schema.name} version {version} is not supported")
    while True:
        try:
            return version, data_codec(schema, read_as).decode(view, 2)[0]
        except DecodeError:
            if not short_as_older or read_as <= schema.min_version:
                raise
            read_as -= 1


def splice(out: bytearray, splices: list) -> list:
    """The output buffers: stretches of `out` (as views, not copies) with spliced buffers between."""
    if not splices:
        return [out]
    view = memoryview(out)
    parts: list = []
    start = 0
    for at, bufs in splices:
        if at > start:
            parts.append(view[start:at])
        parts.extend(bufs)
        start = at
    if start < len(out):
        parts.append(view[start:])
    return parts
