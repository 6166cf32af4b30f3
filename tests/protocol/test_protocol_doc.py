"""protocol.md's table of supported APIs must equal the registry, so the two cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

from kafkalite.protocol.errors import ErrorCode
from kafkalite.protocol.messages import APIS

DOC = Path(__file__).resolve().parents[2] / "protocol.md"


def _table_after(heading: str) -> list[list[str]]:
    lines = DOC.read_text().splitlines()
    start = lines.index(heading)
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_supported_api_table_equals_the_registry():
    header, separator, *rows = _table_after("## Supported APIs")
    assert header == ["key", "name", "min", "max", "first flexible"]
    assert set("".join(separator)) <= set("-:")
    documented = [(int(k), name, int(lo), int(hi), None if flex == "-" else int(flex)) for k, name, lo, hi, flex in rows]
    registry = [(a.key, a.name, a.min_version, a.max_version, a.flexible) for a in APIS.values()]
    assert documented == registry


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
