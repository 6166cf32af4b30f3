"""The supported-API tables of protocol.md and README.md must equal what ApiVersions advertises; the other tables
must match the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import kafkalite.broker.dispatch  # noqa: F401  (registers every handler)
from kafkalite.broker.registry import supported_api_keys
from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.messages import APIS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "protocol.md"


def _table_after(heading: str, doc: Path = DOC) -> list[list[str]]:
    lines = doc.read_text().splitlines()
    start = lines.index(heading)
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


@pytest.mark.parametrize("doc", ["protocol.md", "README.md"])
def test_supported_api_table_equals_what_api_versions_advertises(doc):
    header, separator, *rows = _table_after("## Supported APIs", ROOT / doc)
    assert header == ["key", "name", "min", "max", "first flexible"]
    assert set("".join(separator)) <= set("-:")
    documented = [(int(k), name, int(lo), int(hi), None if flex == "-" else int(flex))
                  for k, name, lo, hi, flex in rows]
    advertised = [(a["api_key"], APIS[a["api_key"]].name, a["min_version"], a["max_version"],
                   APIS[a["api_key"]].flexible) for a in supported_api_keys()]
    assert documented == advertised


def test_error_table_names_match_their_codes():
    _, _, *rows = _table_after("## Error codes kafkalite returns")
    assert rows
    for code, name, _ in rows:
        assert ErrorCode(int(code)).name == name


def test_record_batch_table_matches_the_header_layout():
    from kafkalite.protocol.record_batch import HEADER_SIZE

    _, _, *rows = _table_after("## Record batch v2")
    offsets = [(int(o), s) for o, s, _ in rows]
    for (offset, size), (next_offset, _) in zip(offsets, offsets[1:]):
        assert offset + int(size) == next_offset
    assert offsets[-1][0] == HEADER_SIZE
    assert re.fullmatch(r"\d+", offsets[0][1])
