"""`kafkalite nc`: JSON requests in, JSON responses out, against a live broker."""

import json

from kafkalite.protocol.messages import APIS_BY_NAME


def responses(result) -> list[dict]:
    return [json.loads(line) for line in result.out.splitlines()]


def test_requests_from_stdin_with_defaults_names_records_and_bad_lines(broker, tool, topic_name):
    name = topic_name()
    tool("topics", "create", name)
    produce = {"api": "Produce", "body": {"acks": -1, "timeout_ms": 5000,
                                          "topic_data": [{"name": name, "partition_data": [
        {"index": 0, "records": {"compression": "gzip", "records": [
            {"key": "k", "value": "hello", "headers": {"h": "v"}}, {"value": {"hex": "00ff"}}]}}]}]}}
    fetch = {"api": "Fetch", "version": 11, "body": {"max_wait_ms": 0, "min_bytes": 1, "topics": [
        {"topic": name, "partitions": [{"partition": 0, "fetch_offset": 0, "partition_max_bytes": 65536}]}]}}
    lines = [
        "ApiVersions",
        json.dumps({"api": "Metadata", "version": 12, "body": {"topics": [{"name": name}, {"name": "nope"}],
                                                               "allow_auto_topic_creation": False}}),
        "{not json",
        json.dumps({"api": "Metdata"}),
        json.dumps({"api": "Metadata", "body": {"topicz": None}}),
        json.dumps(produce),
        json.dumps(fetch),
    ]
    result = tool("nc", input="\n".join(lines) + "\n")
    assert result.code == 2, result.err  # bad lines make the exit code 2; the good ones were still answered
    versions, metadata, produced, fetched = responses(result)

    assert versions["api"] == "ApiVersions" and versions["version"] == APIS_BY_NAME["ApiVersions"].max_version
    assert {"api_key": 3, "api_name": "Metadata", "min_version": 1, "max_version": 12} in versions["body"]["api_keys"]

    topics = {t["name"]: t for t in metadata["body"]["topics"]}
    assert topics["nope"]["error_code"] == 3 and topics["nope"]["error_name"] == "UNKNOWN_TOPIC_OR_PARTITION"
    assert "error_name" not in topics[name]  # only beside non-zero codes
    assert len(topics[name]["topic_id"]) == 22  # Kafka's base64 uuid form

    assert produced["version"] == APIS_BY_NAME["Produce"].max_version
    assert produced["body"]["responses"][0]["partition_responses"][0]["error_code"] == 0
    [batch] = fetched["body"]["responses"][0]["partitions"][0]["records"]
    assert batch["compression"] == "gzip" and batch["crc_ok"] is True
    assert [(r["offset"], r["key"], r["value"], r["headers"]) for r in batch["records"]] == [
        (0, "k", "hello", [["h", "v"]]), (1, None, {"hex": "00ff"}, [])]

    errors = result.err.splitlines()
    assert errors[0].startswith("kafkalite nc: line 3: not valid JSON")
    assert errors[1] == "kafkalite nc: line 4: unknown API 'Metdata'; did you mean Metadata or Heartbeat?"
    assert errors[2] == ("kafkalite nc: line 5: Metadata v12 request: topicz is not a field of this message; "
                         "did you mean topics?")


def test_arguments_hex_and_raw_frames(broker, tool):
    # A hand-written ApiVersions v0 request: api_key 18, version 0, correlation id 7, null client id.
    raw = "00120000" "00000007" "ffff"
    result = tool("nc", broker.bootstrap, "--hex", "--raw", raw,
                       '{"api": "DescribeCluster", "version": 0}')
    assert result.code == 0, result.err
    from_raw, cluster = responses(result)
    assert (from_raw["api"], from_raw["version"], from_raw["correlation_id"]) == ("ApiVersions", 0, 7)
    assert cluster["body"]["brokers"][0]["port"] == broker.port
    sent = [line for line in result.err.splitlines() if line.startswith("> ")]
    received = [line for line in result.err.splitlines() if line.startswith("< ")]
    assert sent[0] == "> 0000000a" + raw  # the size prefix was added
    assert len(sent) == len(received) == 2  # with its version given, DescribeCluster needs no ApiVersions first


def test_field_type_errors_name_the_field(tool):
    result = tool("nc", json.dumps({"api": "Metadata", "body": {"topics": [{"name": 5}]}}),
                       json.dumps({"api": "Metadata", "version": 99}))
    assert result.code == 2 and result.out == ""
    assert "topics[0].name must be a string, not 5" in result.err
    assert "kafkalite speaks Metadata versions 1-12, not 99" in result.err
