"""Decoded protocol values as JSON: one convention for nc's responses and consume's --format json.

- bytes: the text when they are printable UTF-8, else {"hex": "..."}; null stays null.
- uuids: Kafka's own text form (URL-safe base64 without padding, as kafka-topics prints topic ids).
- records fields: a list of decoded batches, each with its records (see `batches_json`).
- beside every non-zero `error_code`, an `error_name` ("UNKNOWN_TOPIC_OR_PARTITION"); beside every
  `api_key`, an `api_name`.
"""

from __future__ import annotations

import base64
import binascii
import uuid

from kafkalite.protocol import compression
from kafkalite.protocol.errors import DecodeError
from kafkalite.protocol.messages import APIS
from kafkalite.protocol.record_batch import HEADER_SIZE, iter_batches_lenient
from kafkalite.tools.common import error_name


def bytes_json(data: bytes | bytearray | memoryview | None):
    if data is None:
        return None
    data = bytes(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": data.hex()}
    if all(c.isprintable() or c in "\t\n\r" for c in text):
        return text
    return {"hex": data.hex()}


def bytes_from_json(value, where: str) -> bytes | None:
    """The inverse of bytes_json: a string (as UTF-8), {"hex": ...}, {"base64": ...} or null."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and len(value) == 1:
        try:
            if "hex" in value:
                return bytes.fromhex(value["hex"])
            if "base64" in value:
                return base64.b64decode(value["base64"], validate=True)
        except (ValueError, TypeError, binascii.Error) as e:
            raise ValueError(f"{where}: {e}") from None
    raise ValueError(f'{where}: expected a string, {{"hex": "..."}}, {{"base64": "..."}} or null, '
                     f"not {value!r}")


def uuid_text(value: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(value.bytes).rstrip(b"=").decode("ascii")


def uuid_from_text(text, where: str) -> uuid.UUID:
    """Kafka's base64 form or the usual hyphenated form."""
    if isinstance(text, str):
        try:
            if len(text) == 22:
                return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=="))
            return uuid.UUID(text)
        except (ValueError, binascii.Error):
            pass
    raise ValueError(f"{where}: {text!r} is not a uuid (give Kafka's 22-character base64 form "
                     f"or 8-4-4-4-12 hex)")


def records_json(record) -> dict:
    return {
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": bytes_json(record.key),
        "value": bytes_json(record.value),
        "headers": [[k, bytes_json(v)] for k, v in record.headers],
    }


def batches_json(data) -> list | dict:
    """A records field as its batches, each with decoded records; what cannot be decoded stays hex."""
    view = memoryview(data)
    out = []
    used = 0
    try:
        for batch in iter_batches_lenient(view):
            entry = {
                "base_offset": batch.base_offset,
                "last_offset_delta": batch.last_offset_delta,
                "partition_leader_epoch": batch.partition_leader_epoch,
                "compression": compression.NAMES.get(batch.codec, str(batch.codec)),
                "timestamp_type": "LogAppendTime" if batch.log_append_time else "CreateTime",
                "base_timestamp": batch.base_timestamp,
                "max_timestamp": batch.max_timestamp,
                "producer_id": batch.producer_id,
                "producer_epoch": batch.producer_epoch,
                "base_sequence": batch.base_sequence,
                "transactional": batch.is_transactional,
                "control": batch.is_control,
                "crc_ok": batch.crc_ok(),
            }
            try:
                entry["records"] = [records_json(r) for r in batch.records()]
            except (DecodeError, ValueError) as e:
                entry["records_error"] = str(e)
                entry["hex"] = bytes(batch.buf[HEADER_SIZE:]).hex()
            out.append(entry)
            used += batch.size
    except DecodeError as e:
        return {"hex": bytes(view).hex(), "decode_error": str(e)}
    if used < len(view):
        # Fetch may cut the last batch short at max_bytes: say so rather than hide the bytes.
        out.append({"partial_batch_bytes": len(view) - used})
    return out


def message_json(value, key: str | None = None):
    """A decoded message (dicts, lists, ints, strings, bytes, memoryviews, uuids) as JSON values."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out[k] = message_json(v, k)
            if k == "error_code" and isinstance(v, int) and v != 0:
                out["error_name"] = error_name(v)
            elif k == "api_key" and isinstance(v, int) and v in APIS:
                out["api_name"] = APIS[v].name
        return out
    if isinstance(value, list):
        return [message_json(v, key) for v in value]
    if isinstance(value, memoryview):  # a records field: the codec decodes those as views
        return batches_json(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes_json(value)
    if isinstance(value, uuid.UUID):
        return uuid_text(value)
    return value
