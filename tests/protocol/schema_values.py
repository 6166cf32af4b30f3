"""Values derived from the message declarations: Hypothesis strategies, deterministic full examples,
and the dict a decoder must return for a given input (absent fields filled with their defaults)."""

from __future__ import annotations

import functools
import os
import uuid

from hypothesis import strategies as st

from kafkalite.protocol.codec import default_value
from kafkalite.protocol.messages import APIS
from kafkalite.protocol.schema import Array, Field, Struct, in_versions

INT_RANGES = {
    "int8": (-(1 << 7), (1 << 7) - 1),
    "int16": (-(1 << 15), (1 << 15) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
    "uint16": (0, (1 << 16) - 1),
    "uint32": (0, (1 << 32) - 1),
}

# Examples per Hypothesis test; raise it for a deeper run (e.g. KAFKALITE_EXAMPLES=500).
EXAMPLES = int(os.environ.get("KAFKALITE_EXAMPLES", "15"))

# Every (api, version) kafkalite supports: the parameter space of the round-trip and fuzz tests.
API_VERSIONS = [(api, v) for api in APIS.values() for v in range(api.min_version, api.max_version + 1)]
API_VERSION_IDS = [f"{api.name}-v{v}" for api, v in API_VERSIONS]


def _present(f: Field, version: int) -> bool:
    return in_versions(f.versions, version)


def _tagged(f: Field, version: int, flexible: bool) -> bool:
    return flexible and f.tag is not None and in_versions(f.tagged, version)


@functools.cache
def message_strategy(fields, version: int, flexible: bool) -> st.SearchStrategy[dict]:
    """Dicts holding every field present in `version`; tagged fields are sometimes left out."""
    required, optional = {}, {}
    for f in fields:
        if not _present(f, version):
            continue
        s = _field_strategy(f, f.type, version, flexible)
        (optional if _tagged(f, version, flexible) else required)[f.name] = s
    return st.fixed_dictionaries(required, optional=optional)


def _field_strategy(f: Field, t, version: int, flexible: bool) -> st.SearchStrategy:
    if isinstance(t, Struct):
        s = message_strategy(t.fields, version, flexible)
    elif isinstance(t, Array):
        if isinstance(t.of, tuple):
            item = message_strategy(t.of, version, flexible)
        else:
            item = _field_strategy(Field(f.name, t.of), t.of, version, flexible)
        s = st.lists(item, max_size=3)
    elif t in INT_RANGES:
        s = st.integers(*INT_RANGES[t])
    elif t == "bool":
        s = st.booleans()
    elif t == "float64":
        s = st.floats(allow_nan=False)
    elif t == "string":
        s = st.text(max_size=6)
    elif t == "bytes":
        s = st.binary(max_size=8)
    elif t == "records":
        s = st.binary(max_size=80)
    elif t == "uuid":
        s = st.binary(min_size=16, max_size=16).map(lambda b: uuid.UUID(bytes=b))
    else:
        raise AssertionError(f"no strategy for type {t!r}")
    if in_versions(f.nullable, version):
        s = st.none() | s
    return s


def full_value(fields, version: int, flexible: bool) -> dict:
    """A deterministic value with every field set, arrays of one item, nothing null and tagged
    fields off their defaults: every length, count and tag appears in its encoding."""
    out = {}
    for f in fields:
        if _present(f, version):
            out[f.name] = _full(f, f.type, version, flexible)
    return out


def _full(f: Field, t, version: int, flexible: bool):
    if isinstance(t, Struct):
        return full_value(t.fields, version, flexible)
    if isinstance(t, Array):
        if isinstance(t.of, tuple):
            return [full_value(t.of, version, flexible)]
        return [_full(Field(f.name, t.of), t.of, version, flexible)]
    if t in INT_RANGES:
        return 7
    if t == "bool":
        return True
    if t == "float64":
        return 1.5
    if t == "string":
        return "ab"
    if t == "bytes":
        return b"xyz"
    if t == "records":
        return b"rec"
    if t == "uuid":
        return uuid.UUID(int=0x0123456789ABCDEF0123456789ABCDEF)
    raise AssertionError(t)


def expected_decoded(fields, value: dict, version: int) -> dict:
    """What decoding the encoding of `value` must give: every declared field, defaults where absent."""
    out = {}
    for f in fields:
        if _present(f, version) and f.name in value:
            out[f.name] = _expected(f.type, value[f.name], version)
        else:
            out[f.name] = default_value(f)
    return out


def _expected(t, v, version: int):
    if v is None:
        return None
    if isinstance(t, Struct):
        return expected_decoded(t.fields, v, version)
    if isinstance(t, Array) and isinstance(t.of, tuple):
        return [expected_decoded(t.of, item, version) for item in v]
    return v


def normalize(value):
    """Decoded values with memoryviews (records) turned into bytes, for comparison."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value
