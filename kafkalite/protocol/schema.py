"""Declarative message definitions: fields with version ranges, nullability and tags.

A message is a tuple of `Field`s. The codec engine (`kafkalite.protocol.codec`) compiles each
(API, version, request/response) into one encoder and one decoder the first time it is needed.

Version ranges use Kafka's notation: "3+", "0-4", "5", or "none".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Primitive type names. "records" is nullable-bytes on the wire, decoded as a zero-copy memoryview.
PRIMITIVES = frozenset(
    {"int8", "int16", "int32", "int64", "uint16", "uint32", "float64", "bool", "string", "bytes", "records", "uuid"}
)

MISSING: Any = object()


@dataclass(frozen=True)
class Array:
    """An array of a primitive type name, or of a struct given as a tuple of Fields."""

    of: "str | tuple[Field, ...]"


@dataclass(frozen=True)
class Struct:
    """A single nested struct (not an array)."""

    fields: "tuple[Field, ...]"


@dataclass(frozen=True)
class Field:
    name: str  # snake_case, as handlers and the `nc` tool see it
    type: "str | Array | Struct"
    versions: str = "0+"
    nullable: str = "none"  # versions in which the value may be null
    tag: int | None = None  # tagged fields: the tag number ...
    tagged: str = "none"  # ... and the versions in which the field is tagged
    default: Any = MISSING  # value used when the field is absent in a version (or not given when encoding)


def F(name, type, versions="0+", nullable="none", tag=None, tagged="none", default=MISSING) -> Field:
    """Shorthand for Field; struct arrays may be given as a plain list of fields."""
    if isinstance(type, list):
        type = Array(tuple(type))
    return Field(name, type, versions, nullable, tag, tagged, default)


# eq=False: compared and hashed by identity. Each API has one schema object, and message_codec's cache hashes
# it on every request; a field-by-field hash walks every nested Field (it was 3% of a produce request's time).
@dataclass(frozen=True, eq=False)
class ApiSchema:
    key: int
    name: str
    min_version: int  # the versions kafkalite supports
    max_version: int
    flexible: int | None  # first flexible version; None when no supported version is flexible
    request: tuple[Field, ...] = field(default=())
    response: tuple[Field, ...] = field(default=())
    # ApiVersions advertises min_version unless this says otherwise (see produce.py for the one case).
    advertised_min_version: int | None = None

    def is_flexible(self, version: int) -> bool:
        return self.flexible is not None and version >= self.flexible


@dataclass(frozen=True, eq=False)
class DataSchema:
    """A versioned structure that is not an API message (Kafka's "type": "data" schemas): the consumer protocol
    inside JoinGroup/SyncGroup, the records of __consumer_offsets. Declared in `messages/data/`; never in
    ApiVersions. On the wire: int16 version, then the fields of that version (see codec.encode_data)."""

    name: str
    min_version: int
    max_version: int
    flexible: int | None
    fields: tuple[Field, ...]

    def is_flexible(self, version: int) -> bool:
        return self.flexible is not None and version >= self.flexible


def parse_versions(spec: str) -> tuple[int, int]:
    """Kafka's version range notation to an inclusive (low, high); "none" is an empty range."""
    spec = spec.strip()
    if spec == "none":
        return (1, 0)
    if spec.endswith("+"):
        return (int(spec[:-1]), 1 << 15)
    if "-" in spec:
        low, high = spec.split("-")
        return (int(low), int(high))
    return (int(spec), int(spec))


def in_versions(spec: str, version: int) -> bool:
    low, high = parse_versions(spec)
    return low <= version <= high
