"""The C record decoder (kafkalite_client._records) against the pure-Python one in fetched.py.

Both take the same arguments and must append the same records, or both raise DecodeError: the Python one
is the reference, the C one is what the consumer uses when it is built.
"""

import collections
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkalite.protocol import compression
from kafkalite.protocol.errors import DecodeError
from kafkalite.protocol.primitives import write_varint
from kafkalite.protocol.record_batch import (
    HEADER_SIZE, TIMESTAMP_TYPE_BIT, RecordBatch, build_batch, set_base_offset,
)
from kafkalite_client.fetched import decode_records_py
from kafkalite_client.records import ConsumerRecord

INT64 = st.integers(-(2**63), 2**63 - 1)


def load_extension():
    """The C decoder: a test failure in CI (which has a compiler), a skip on a laptop without one."""
    try:
        from kafkalite_client._records import decode_records
    except ImportError as e:
        reason = f"kafkalite_client._records is not built ({e}); `pip install -e .` builds it with a C compiler"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI has a compiler, so this is a failure")
        pytest.skip(reason)
    return decode_records


@pytest.fixture(scope="module")
def decode_c():
    return load_extension()


@pytest.fixture(params=["python", "c"])
def decoder(request):
    return decode_records_py if request.param == "python" else request.getfixturevalue("decode_c")


def test_the_extension_is_built():
    load_extension()
    from kafkalite_client import fetched

    assert fetched.ACCELERATED == (os.environ.get("KAFKALITE_PURE_PYTHON") != "1")


def test_pure_python_can_be_forced():
    code = "import kafkalite_client.fetched as f; print(f.ACCELERATED)"
    env = dict(os.environ, KAFKALITE_PURE_PYTHON="1")
    assert subprocess.check_output([sys.executable, "-c", code], env=env, text=True).strip() == "False"


def fields(record) -> tuple:
    return (record.topic, record.partition, record.offset, record.timestamp, record.key, record.value,
            record.headers, record.timestamp_type)


def decode(decoder, data, count, base_offset=0, base_ts=0, log_append=False, max_ts=0, min_offset=0,
           record_class=ConsumerRecord, out=None):
    out = [] if out is None else out
    decoder(data, count, base_offset, base_ts, log_append, max_ts, "topic", 7, min_offset, record_class, out)
    return out


def assert_same_records(ours, reference):
    assert [fields(r) for r in ours] == [fields(r) for r in reference]
    for r in ours:
        assert type(r) is ConsumerRecord
        assert type(r.offset) is int and type(r.timestamp) is int and type(r.timestamp_type) is int
        assert r.key is None or type(r.key) is bytes
        assert r.value is None or type(r.value) is bytes
        assert type(r.headers) is list
        assert all(type(k) is str and (v is None or type(v) is bytes) for k, v in r.headers)
    assert len({id(r.headers) for r in ours}) == len(ours)  # a list of its own for each record


def encode_records(records) -> bytes:
    """The records part of a batch with any deltas (build_batch makes them all >= 0 and in order)."""
    body = bytearray()
    for ts_delta, off_delta, key, value, headers in records:
        rec = bytearray(b"\x00")
        write_varint(rec, ts_delta)
        write_varint(rec, off_delta)
        write_varbytes(rec, key)
        write_varbytes(rec, value)
        write_varint(rec, len(headers))
        for hkey, hvalue in headers:
            write_varbytes(rec, hkey.encode() if isinstance(hkey, str) else hkey)
            write_varbytes(rec, hvalue)
        write_varint(body, len(rec))
        body += rec
    return bytes(body)


def write_varbytes(out: bytearray, data: bytes | None) -> None:
    write_varint(out, -1 if data is None else len(data))
    out += data or b""


# Keys and values up to 300 bytes, so that lengths take two-byte varints too.
_bytes = st.one_of(st.none(), st.just(b""), st.binary(max_size=300))
_headers = st.lists(st.tuples(st.one_of(st.text(max_size=6), st.sampled_from(["é", "ключ", "键", "🙂"])),
                              st.one_of(st.none(), st.binary(max_size=20))), max_size=3)
_record = st.tuples(_bytes, _bytes, _headers)


@settings(max_examples=200, deadline=None)
@given(st.lists(_record, min_size=1, max_size=60), st.lists(st.integers(-(2**60), 2**60), min_size=1),
       st.integers(0, 2**62), st.integers(-3, 70), st.booleans(), st.sampled_from(sorted(compression.NAMES)),
       st.booleans())
def test_decoders_agree_on_built_batches(decode_c, records, timestamps, base_offset, skip, log_append, codec,
                                         as_memoryview):
    timestamps = [timestamps[i % len(timestamps)] for i in range(len(records))]
    raw = bytearray(build_batch(records, timestamps=timestamps, codec=codec,
                                attributes=TIMESTAMP_TYPE_BIT if log_append else 0))
    set_base_offset(raw, base_offset)
    batch = RecordBatch(memoryview(raw))
    body = batch.buf[HEADER_SIZE:]
    data = compression.decompress(batch.codec, body) if batch.codec else body
    if not as_memoryview:
        data = bytes(data)
    args = (batch.records_count, batch.base_offset, batch.base_timestamp, batch.log_append_time,
            batch.max_timestamp)
    min_offset = base_offset + skip
    ours = decode(decode_c, data, *args, min_offset=min_offset)
    reference = decode(decode_records_py, data, *args, min_offset=min_offset)
    assert_same_records(ours, reference)
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in ours] == \
        [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in batch.records() if r.offset >= min_offset]
    assert all(r.timestamp_type == int(log_append) for r in ours)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(INT64, INT64, _bytes, _bytes, _headers), min_size=1, max_size=20),
       INT64, INT64, INT64, st.booleans())
def test_decoders_agree_on_any_deltas(decode_c, records, base_offset, base_ts, min_offset, log_append):
    """Negative and 64-bit deltas, whose sums with the base leave int64: Python ints, so C ones too."""
    data = encode_records(records)
    args = (len(records), base_offset, base_ts, log_append, 12345)
    ours = decode(decode_c, data, *args, min_offset=min_offset)
    assert_same_records(ours, decode(decode_records_py, data, *args, min_offset=min_offset))


VALID = encode_records([
    (0, 0, None, b"v" * 200, [("h", b"1"), ("é", None)]),
    (-70000, 1, b"", b"", []),
    (2**40, 300, b"k", None, [("", b"")]),
])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=4),
       st.integers(0, 4))
def test_decoders_agree_on_corrupted_bytes(decode_c, changes, count):
    data = bytearray(VALID)
    for pos, byte in changes:
        data[pos] = byte
    results = []
    for decoder in (decode_c, decode_records_py):
        try:
            results.append([fields(r) for r in decode(decoder, bytes(data), count)])
        except DecodeError:
            results.append(DecodeError)
    assert results[0] == results[1]


def test_every_truncation_is_a_decode_error(decoder):
    assert len(decode(decoder, VALID, 3)) == 3
    for cut in range(len(VALID)):
        with pytest.raises(DecodeError):
            decode(decoder, VALID[:cut], 3)


def record(fields_bytes: bytes) -> bytes:
    """One record: its length, then attributes and the given fields."""
    rec = b"\x00" + fields_bytes
    out = bytearray()
    write_varint(out, len(rec))
    return bytes(out) + rec


NO_KEY_EMPTY_VALUE_NO_HEADERS = b"\x01\x00\x00"  # key -1, value 0, no headers

MALFORMED = {
    "record length varint of 11 bytes": b"\xff" * 11,
    "timestamp delta varint of 11 bytes": record(b"\xff" * 10 + b"\x01" + b"\x00" + NO_KEY_EMPTY_VALUE_NO_HEADERS),
    "10-byte varint overflowing 64 bits": record(b"\xff" * 9 + b"\x02" + b"\x00" + NO_KEY_EMPTY_VALUE_NO_HEADERS),
    "record length past the end": b"\x40" + bytes(10),
    "zero record length": b"\x00",
    "negative record length": b"\x03" + bytes(4),
    "key length past the record": record(b"\x00\x00" + b"\xd0\x0f" + b"abc"),
    "value length past the batch": record(b"\x00\x00\x01\x7e"),
    "negative key length other than -1": record(b"\x00\x00\x03abc\x00\x00"),
    "negative value length other than -1": record(b"\x00\x00\x01\x05\x00"),
    "negative header count": record(b"\x00\x00\x01\x00\x01"),
    "header count past the record": record(b"\x00\x00\x01\x00\x7e"),
    "negative header key length": record(b"\x00\x00\x01\x00\x02\x03\x01"),
    "header value length past the record": record(b"\x00\x00\x01\x00\x02\x02h\x10"),
    "invalid UTF-8 header key": record(b"\x00\x00\x01\x00\x02\x04\xff\xfe\x01"),
    "truncated UTF-8 header key": record(b"\x00\x00\x01\x00\x02\x02\xc3\x01"),
    "surrogate in a header key": record(b"\x00\x00\x01\x00\x02\x06\xed\xa0\x80\x01"),
    "record longer than its fields": record(b"\x00\x00" + NO_KEY_EMPTY_VALUE_NO_HEADERS + b"\x00"),
    "trailing bytes after the last record": VALID + b"\x00",
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_records_are_decode_errors(decoder, name):
    data = MALFORMED[name]
    count = 3 if data.startswith(VALID) else 1
    with pytest.raises(DecodeError):
        decode(decoder, data, count)


def test_error_messages_name_the_problem(decode_c):
    with pytest.raises(DecodeError, match="varint is too long"):
        decode(decode_c, MALFORMED["record length varint of 11 bytes"], 1)
    with pytest.raises(DecodeError, match="1 bytes left after the last record"):
        decode(decode_c, VALID + b"\x00", 3)
    with pytest.raises(DecodeError, match="record length does not match its fields"):
        decode(decode_c, MALFORMED["record longer than its fields"], 1)
    with pytest.raises(DecodeError, match="at offset 42: 'utf-8' codec can't decode"):
        decode(decode_c, MALFORMED["invalid UTF-8 header key"], 1, base_offset=42)


def test_records_before_min_offset_are_still_validated(decoder):
    data = record(b"\x00\x00\x01\x00\x02\x04\xff\xfe\x01")  # invalid UTF-8 header key, offset delta 0
    with pytest.raises(DecodeError):
        decode(decoder, data, 1, min_offset=10)


def test_appends_to_a_deque_and_keeps_what_came_before(decoder):
    out = collections.deque(["earlier"])
    decode(decoder, memoryview(VALID), 3, base_offset=100, out=out)
    assert out[0] == "earlier" and [r.offset for r in list(out)[1:]] == [100, 101, 400]


def test_log_append_time_uses_the_max_timestamp_object(decoder):
    out = decode(decoder, VALID, 3, base_ts=5, log_append=True, max_ts=2**70)
    assert [(r.timestamp, r.timestamp_type) for r in out] == [(2**70, 1)] * 3


def test_a_record_class_that_is_not_a_plain_slots_dataclass_is_called(decode_c):
    calls = []

    class Counted(ConsumerRecord):
        __slots__ = ()

        def __post_init__(self):
            calls.append(self.offset)

    # ConsumerRecord's own __init__ does not call a subclass's __post_init__; this one does.
    class Checked(Counted):
        __slots__ = ()

        def __init__(self, *args):
            ConsumerRecord.__init__(self, *args)
            self.__post_init__()

    out = decode(decode_c, VALID, 3, base_offset=10, record_class=Checked)
    assert calls == [10, 11, 310] and all(type(r) is Checked for r in out)
    assert [fields(r) for r in out] == [fields(r) for r in decode(decode_c, VALID, 3, base_offset=10)]

    out = decode(decode_c, VALID, 3, record_class=lambda *args: args)
    assert out[0] == ("topic", 7, 0, 0, None, b"v" * 200, [("h", b"1"), ("é", None)], 0)


def test_wrong_arguments_are_type_errors(decode_c):
    with pytest.raises(TypeError):
        decode_c(VALID, 3)
    with pytest.raises(TypeError):
        decode(decode_c, "not a buffer", 3)
    with pytest.raises(AttributeError):
        decode(decode_c, VALID, 3, out=object())


def test_no_references_leak(decode_c):
    topic, partition = "leak-check", 7
    cases = [(VALID, 3)] + [(data, 3 if data.startswith(VALID) else 1) for data in MALFORMED.values()]

    def run():
        for data, count in cases:
            try:
                decode_c(data, count, 0, 0, False, 0, topic, partition, 0, ConsumerRecord, [])
            except DecodeError:
                pass

    run()  # caches warm up
    before = (sys.getrefcount(topic), sys.getrefcount(partition), sys.getrefcount(ConsumerRecord))
    for _ in range(100):
        run()
    assert (sys.getrefcount(topic), sys.getrefcount(partition), sys.getrefcount(ConsumerRecord)) == before
