"""Golden frames: requests and responses recorded from five real clients (tests/golden/README.md) decode, and
re-encode to the very same bytes; the record batches those clients produced decode and their CRCs verify."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from kafkalite.protocol import compression, wire
from kafkalite.protocol.messages import APIS
from kafkalite.protocol.record_batch import NO_PRODUCER_ID, iter_batches

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
NAME = re.compile(r"^(?P<api>[a-z_]+)_(?P<direction>request|response)_v(?P<version>\d+)_(?P<number>\d{3})\.bin$")
API_BY_FILE_NAME = {re.sub(r"(?<!^)(?=[A-Z])", "_", api.name).lower(): api for api in APIS.values()}
CLIENTS = ["confluent-kafka", "aiokafka", "kafka-python", "kafkajs", "kcat"]
# kafkajs has only gzip built in; the recording session adds snappy and lz4 through its plugins (no zstd).
CODECS_PRODUCED = {client: {"none", "gzip", "snappy", "lz4", "zstd"} for client in CLIENTS}
CODECS_PRODUCED["kafkajs"] = {"none", "gzip", "snappy", "lz4"}
PRODUCE_KEY = 0


def golden_frames() -> list[tuple[str, str, str, int, Path]]:
    """(client, api file name, direction, version, path) for every stored frame."""
    found = []
    for path in sorted(GOLDEN.glob("*/*.bin")):
        match = NAME.match(path.name)
        assert match, f"unexpected golden file name {path}"
        found.append((path.parent.name, match["api"], match["direction"], int(match["version"]), path))
    return found


FRAMES = golden_frames()
REQUESTS = [f for f in FRAMES if f[2] == "request"]
RESPONSES = [f for f in FRAMES if f[2] == "response"]


def frame_id(frame) -> str:
    return f"{frame[0]}/{frame[4].name}"


def librdkafka_padding_removed(frame: bytes, body_start: int) -> bytes:
    """librdkafka's all-topics flexible Metadata request (librdkafka issue #5049; see
    wire._librdkafka_padded_all_topics) carries 3 zero bytes after its null topics varint. We decode it as
    meant, so it re-encodes without them: that is the only difference allowed."""
    return frame[: body_start + 1] + frame[body_start + 4 :]


def test_the_corpus_covers_every_client_and_stays_small():
    assert {f[0] for f in FRAMES} == set(CLIENTS)
    assert sum(f[4].stat().st_size for f in FRAMES) < 2 * 1024 * 1024
    for client in CLIENTS:
        kinds = {(f[1], f[2]) for f in FRAMES if f[0] == client}
        for api in ("api_versions", "metadata", "produce", "fetch", "list_offsets", "init_producer_id",
                    "find_coordinator", "join_group", "sync_group", "heartbeat", "offset_commit",
                    "offset_fetch", "leave_group"):
            assert (api, "request") in kinds, f"{client} sent no {api} request"


@pytest.mark.parametrize("golden", REQUESTS, ids=frame_id)
def test_request_decodes_and_re_encodes_to_the_same_bytes(golden):
    client, api_name, _, version, path = golden
    frame = path.read_bytes()
    header, body = wire.decode_request(memoryview(frame))
    assert API_BY_FILE_NAME[api_name].key == header.api_key and header.api_version == version
    assert body is not None, f"{client} sent ApiVersions v{version}, which we answer only with an error"
    again = wire.join(wire.encode_request(header.api_key, header.api_version, header.correlation_id,
                                          header.client_id, body))[4:]
    if again != frame and header.api_key == wire.METADATA_KEY and body["topics"] is None:
        _, _, body_start = wire.decode_request_header(memoryview(frame))
        assert client in ("confluent-kafka", "kcat"), "only librdkafka pads this request"
        assert again == librdkafka_padding_removed(frame, body_start)
        return
    assert again == frame


@pytest.mark.parametrize("golden", RESPONSES, ids=frame_id)
def test_response_decodes_and_re_encodes_to_the_same_bytes(golden):
    _, api_name, _, version, path = golden
    frame = path.read_bytes()
    api = API_BY_FILE_NAME[api_name]
    correlation_id, body = wire.decode_response(api.key, version, memoryview(frame))
    assert wire.join(wire.encode_response(api.key, version, correlation_id, body))[4:] == frame


def sent_versions() -> dict[str, dict[str, set[int]]]:
    """client -> api -> the versions it sent (each (api, version) a client sent has at least one stored frame)."""
    sent: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for client, api_name, _, version, _ in REQUESTS:
        sent[client][api_name].add(version)
    return sent


def test_every_version_a_client_sent_is_one_we_support():
    unsupported = []
    for client, apis in sent_versions().items():
        for api_name, versions in apis.items():
            api = API_BY_FILE_NAME.get(api_name)
            for version in versions:
                if api is None or not wire.supports(api, version):
                    unsupported.append(f"{client} {api_name} v{version}")
    assert not unsupported


def test_summary_of_versions_by_client(capsys):
    """Not a check: the client x API x version table, shown with `pytest -s` (and kept in the README)."""
    sent = sent_versions()
    apis = sorted({api for client in sent.values() for api in client}, key=lambda n: API_BY_FILE_NAME[n].key)
    with capsys.disabled():
        print("\n" + "api".ljust(22) + "".join(c.ljust(16) for c in CLIENTS))
        for api in apis:
            cells = [",".join(f"v{v}" for v in sorted(sent[c].get(api, ()))) or "-" for c in CLIENTS]
            print(api.ljust(22) + "".join(cell.ljust(16) for cell in cells))


def produced_batches(client: str):
    for c, _, _, _, path in REQUESTS:
        if c != client:
            continue
        header, body = wire.decode_request(memoryview(path.read_bytes()))
        if header.api_key == PRODUCE_KEY:
            for records in wire.records_fields(body):
                yield from iter_batches(records)


@pytest.mark.parametrize("client", CLIENTS)
def test_batches_each_client_produced_decode_and_their_crcs_verify(client):
    codecs = set()
    for batch in produced_batches(client):
        assert batch.crc_ok(), f"{client}: CRC-32C mismatch"
        assert batch.base_offset == 0 and not batch.is_control
        # Every recording session produces idempotently (kafka-python 3 by default).
        assert batch.producer_id != NO_PRODUCER_ID and batch.base_sequence >= 0
        records = list(batch.records())
        assert len(records) == batch.records_count == batch.last_offset_delta + 1
        assert all(r.value.startswith(f"{client}-".encode()) for r in records)
        codecs.add(compression.NAMES[batch.codec])
    assert codecs == CODECS_PRODUCED[client]


def test_only_librdkafkas_exact_padding_is_forgiven():
    padded = (GOLDEN / "confluent-kafka" / "metadata_request_v12_001.bin").read_bytes()
    header, body = wire.decode_request(memoryview(padded))
    assert body["topics"] is None
    for longer in (padded + b"\0", padded + b"\0\0\0"):  # more trailing bytes than the padding explains
        with pytest.raises(wire.DecodeError):
            wire.decode_request(memoryview(longer))
    _, _, body_start = wire.decode_request_header(memoryview(padded))
    nonzero_padding = padded[: body_start + 1] + b"\0\1\0" + padded[body_start + 4 :]
    with pytest.raises(wire.DecodeError):
        wire.decode_request(memoryview(nonzero_padding))
