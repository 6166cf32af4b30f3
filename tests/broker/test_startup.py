"""Start-up and shutdown of the real thing: `python -m kafkalite` (and the `kafkalite serve` console script) as
child processes on loopback, configured by flags, KAFKALITE_<FLAG> variables and a TOML file."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kafkalite.protocol import wire
from kafkalite.protocol.messages import APIS_BY_NAME
from kafkalite.protocol.record_batch import build_batch
from rawclient import RawClient

PYTHON_M = [sys.executable, "-m", "kafkalite"]
CONSOLE_SCRIPT = [str(Path(sys.executable).with_name("kafkalite")), "serve"]
FAST = ["--set", "offsets.topic.num.partitions=1"]  # 50 partitions per start would only cost time
TOPIC, BROKER = 2, 4
DYNAMIC_BROKER_CONFIG, STATIC_BROKER_CONFIG = 2, 4
_LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


class Kafkalite:
    """One broker process; its output (stdout and stderr) is collected line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, cwd: Path, entry=PYTHON_M):
        environ = {k: v for k, v in os.environ.items() if not k.startswith("KAFKALITE_")}
        environ.update(env or {})
        self.proc = subprocess.Popen([*entry, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=environ, cwd=cwd)
        self.lines: list[str] = []
        self._pump = threading.Thread(target=self._collect, daemon=True)
        self._pump.start()

    def _collect(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        """The first output line containing `text`."""
        deadline = time.monotonic() + timeout
        while True:
            for line in list(self.lines):
                if text in line:
                    return line
            assert self.proc.poll() is None, f"kafkalite exited ({self.proc.returncode}):\n{self.output}"
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.output}"
            time.sleep(0.02)

    def started(self) -> int:
        """Wait for the start-up line; the port it listens on."""
        return int(_LISTENING.search(self.wait_for("listening on")).group(1))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._pump.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def launch(tmp_path):
    """Starts kafkalite processes in tmp_path; kills whatever is still running after the test."""
    running: list[Kafkalite] = []

    def start(*args: str, **kwargs) -> Kafkalite:
        kwargs.setdefault("cwd", tmp_path)
        running.append(Kafkalite(*args, **kwargs))
        return running[-1]

    yield start
    for proc in running:
        proc.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(port: int, timeout: float = 20.0) -> RawClient:
    """A client of a broker that may still be starting (for processes whose log level hides the start-up line)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return RawClient(port)
        except ConnectionRefusedError:
            assert time.monotonic() < deadline, f"nothing listens on port {port}"
            time.sleep(0.05)


def metadata(client: RawClient, *topics: str) -> dict:
    return client.request("Metadata", 8, {"topics": [{"name": t} for t in topics]})


def produce(client: RawClient, topic: str, value: bytes) -> None:
    batch = build_batch([(None, value)], timestamps=int(time.time() * 1000))
    resp = client.request("Produce", 8, {"acks": -1, "timeout_ms": 5000, "topic_data": [
        {"name": topic, "partition_data": [{"index": 0, "records": batch}]}]})
    assert resp["responses"][0]["partition_responses"][0]["error_code"] == 0


def describe(client: RawClient, resource_type: int, name: str, *keys: str) -> dict[str, dict]:
    resp = client.request("DescribeConfigs", 4, {"resources": [
        {"resource_type": resource_type, "resource_name": name, "configuration_keys": list(keys)}]})
    return {c["name"]: c for c in resp["results"][0]["configs"]}


def fetch_request(client: RawClient, topic: str, offset: int, max_wait_ms: int) -> bytes:
    return client.encode("Fetch", 11, {"max_wait_ms": max_wait_ms, "min_bytes": 1, "max_bytes": 1 << 20, "topics": [
        {"topic": topic, "partitions": [{"partition": 0, "fetch_offset": offset, "partition_max_bytes": 1 << 20}]}]})


def write_toml(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


# --------------------------------------------------------------------------------------------- flags


def test_flags_and_the_one_start_up_line(launch, tmp_path):
    data = tmp_path / "flags-data"
    broker = launch("--listen", "127.0.0.1:0", "--advertised-listener", "broker.example:19092",
                    "--data-dir", str(data), "--node-id", "7", "--log-level", "info", *FAST)
    port = broker.started()
    [line] = [line for line in broker.lines if "listening on" in line]
    assert f"listening on 127.0.0.1:{port} (advertised broker.example:19092)" in line
    assert f"data dir {data}," in line
    assert re.search(r"0 topic\(s\) recovered in \d+\.\d\ds, no recovery scan needed$", line), line
    with RawClient(port) as client:
        resp = metadata(client)
    assert resp["brokers"] == [{"node_id": 7, "host": "broker.example", "port": 19092, "rack": None}]
    assert resp["controller_id"] == 7
    assert (data / "cluster.json").exists()
    assert broker.stop() == 0


def test_flag_beats_environment_beats_file(launch, tmp_path):
    config = write_toml(tmp_path / "kafkalite.toml", f"""
listen = "127.0.0.1:1"
advertised-listener = "file.example:1"
data-dir = "{tmp_path / 'file-data'}"
node-id = 1
log-level = "ERROR"
"num.partitions" = 5           # Kafka's name, quoted
log.retention.ms = 5000        # unquoted: a dotted key
[offsets.topic]
num.partitions = 1             # a table: offsets.topic.num.partitions
""")
    env = {"KAFKALITE_ADVERTISED_LISTENER": "env.example:2", "KAFKALITE_DATA_DIR": str(tmp_path / "env-data"),
           "KAFKALITE_NODE_ID": "2", "KAFKALITE_LOG_LEVEL": "WARNING",
           "KAFKALITE_NUM_PARTITIONS": "3",  # loses to --set
           "KAFKALITE_LOG_RETENTION_MS": "6000"}  # beats the file
    broker = launch("--config", config, "--listen", "127.0.0.1:0", "--node-id", "3", "--log-level", "INFO",
                    "--set", "num.partitions=2", env=env)
    port = broker.started()  # seen at all: --log-level INFO beat the environment's WARNING and the file's ERROR
    assert "advertised env.example:2" in broker.wait_for("listening on")
    with RawClient(port) as client:
        resp = metadata(client, "auto")
        settings = describe(client, BROKER, "3", "log.retention.ms", "num.partitions")
    assert resp["brokers"] == [{"node_id": 3, "host": "env.example", "port": 2, "rack": None}]
    assert len(resp["topics"][0]["partitions"]) == 2  # --set beat the environment's 3 and the file's 5
    assert (settings["log.retention.ms"]["value"], settings["log.retention.ms"]["config_source"]) == (
        "6000", STATIC_BROKER_CONFIG)
    assert (tmp_path / "env-data").is_dir() and not (tmp_path / "file-data").exists()
    assert broker.stop() == 0


def test_every_flag_as_an_environment_variable(launch, tmp_path):
    port = free_port()
    config = write_toml(tmp_path / "env.toml", '"offsets.topic.num.partitions" = 1\n"num.partitions" = 4\n')
    broker = launch(env={
        "KAFKALITE_LISTEN": f"127.0.0.1:{port}", "KAFKALITE_ADVERTISED_LISTENER": "adv.example:9999",
        "KAFKALITE_DATA_DIR": str(tmp_path / "env-data"), "KAFKALITE_NODE_ID": "5", "KAFKALITE_CONFIG": config,
        "KAFKALITE_LOG_LEVEL": "warning",
    })
    with connect(port) as client:
        resp = metadata(client, "auto")
    assert resp["brokers"] == [{"node_id": 5, "host": "adv.example", "port": 9999, "rack": None}]
    assert resp["controller_id"] == 5
    assert len(resp["topics"][0]["partitions"]) == 4
    assert (tmp_path / "env-data" / "auto-0").is_dir()
    assert broker.stop() == 0
    assert " INFO " not in broker.output  # WARNING hides the start-up line and the rest


def test_broker_settings_from_the_environment_and_a_misspelt_one(launch, tmp_path):
    port = free_port()
    broker = launch(env={
        "KAFKALITE_LISTEN": f"127.0.0.1:{port}", "KAFKALITE_DATA_DIR": str(tmp_path / "d"),
        "KAFKALITE_OFFSETS_TOPIC_NUM_PARTITIONS": "1", "KAFKALITE_NUM_PARTITIONS": "3",
        "KAFKALITE_AUTO_CREATE_TOPICS_ENABLE": "true", "KAFKALITE_LOG_RETENTION_M": "1",
    })
    warning = broker.wait_for("ignoring KAFKALITE_LOG_RETENTION_M")
    assert warning.rstrip().endswith(
        "ignoring KAFKALITE_LOG_RETENTION_M: it names no broker setting; did you mean "
        "KAFKALITE_LOG_RETENTION_MS (log.retention.ms)?"), warning
    with connect(port) as client:
        assert len(metadata(client, "auto")["topics"][0]["partitions"]) == 3
    assert broker.stop() == 0
    bad = launch("--listen", "127.0.0.1:0", env={"KAFKALITE_NUM_PARTITIONS": "many"})
    assert bad.proc.wait(20) == 2
    bad._pump.join(5)
    assert bad.lines == ["kafkalite: KAFKALITE_NUM_PARTITIONS: num.partitions must be int, not 'many'\n"]


def test_bad_values_exit_with_one_clear_line(launch, tmp_path):
    bad_toml = write_toml(tmp_path / "bad.toml", "listen = = 1\n")
    unknown_setting = write_toml(tmp_path / "unknown.toml", "no.such.setting = 1\n")
    cases = {
        ("--node-id", "abc"): {}, ("--listen", "127.0.0.1:99999"): {}, ("--log-level", "LOUD"): {},
        ("--set", "num.partitions=many"): {}, ("--set", "nonsense"): {},
        ("--config", str(tmp_path / "missing.toml")): {}, ("--config", bad_toml): {}, ("--config", unknown_setting): {},
        (): {"KAFKALITE_NODE_ID": "-1"}, ("-x",): {},
    }
    procs = {args: launch(*args, env=env) for args, env in cases.items()}
    for args, proc in procs.items():
        assert proc.proc.wait(20) != 0, args
        proc._pump.join(5)
        assert len(proc.lines) == 1 or args == ("-x",), (args, proc.output)  # argparse adds its usage line
        assert proc.lines[-1].startswith("kafkalite"), (args, proc.output)
        assert "Traceback" not in proc.output, (args, proc.output)
    assert "KAFKALITE_NODE_ID" in procs[()].output  # says where the bad value came from
    assert "--listen" in procs[("--listen", "127.0.0.1:99999")].output
    assert "did you mean" not in procs[("--config", unknown_setting)].output  # nothing is close to it


def test_start_up_failures_are_one_clear_line(launch, tmp_path):
    (tmp_path / "a-file").write_text("")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "dynamic_settings.json").write_text("{not json")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        expected = {
            launch("--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "d"), *FAST):
                f"kafkalite: cannot listen on 127.0.0.1:{port}: Address already in use",
            launch("--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "a-file"), *FAST):
                f"kafkalite: data dir {tmp_path / 'a-file'} is not a directory",
            launch("--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "corrupt"), *FAST):
                f"kafkalite: cannot open data dir {tmp_path / 'corrupt'}: {tmp_path / 'corrupt'}/dynamic_settings.json",
        }
        for broker, message in expected.items():
            assert broker.proc.wait(20) == 1, broker.output
            broker._pump.join(5)
            assert broker.lines[-1].startswith(message), broker.output
            assert "Traceback" not in broker.output


# --------------------------------------------------------------------------------------------- the data dir's lock


def test_a_second_broker_on_the_same_data_dir_refuses_to_start(launch, tmp_path):
    data = tmp_path / "data"
    first = launch("--listen", "127.0.0.1:0", "--data-dir", str(data), *FAST)
    port = first.started()
    with RawClient(port) as client:
        metadata(client, "t")
        produce(client, "t", b"acknowledged")
    second = launch("--listen", "127.0.0.1:0", "--data-dir", str(data), *FAST)
    assert second.proc.wait(20) == 1
    second._pump.join(5)
    assert second.lines == [
        f"kafkalite: data dir {data} is in use by kafkalite pid {first.proc.pid} (it holds {data / '.lock'}); "
        "stop that broker or choose another --data-dir\n"], second.output
    with RawClient(port) as client:  # the first one is untouched and still serves
        assert metadata(client, "t")["topics"][0]["error_code"] == 0

    first.kill()  # kill -9: the kernel drops the lock with the process
    third = launch("--listen", "127.0.0.1:0", "--data-dir", str(data), *FAST)
    with RawClient(third.started()) as client:
        resp = client.request("ListOffsets", 5, {"replica_id": -1, "isolation_level": 0, "topics": [
            {"name": "t", "partitions": [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}]}]})
    assert resp["topics"][0]["partitions"][0]["offset"] == 1  # the acknowledged record is still there
    assert (data / ".lock").read_text() == f"{third.proc.pid}\n"
    assert third.stop() == 0


# --------------------------------------------------------------------------------------------- shutdown


def test_sigterm_finishes_a_long_poll_then_stops_cleanly(launch, tmp_path):
    data = str(tmp_path / "data")
    broker = launch("--listen", "127.0.0.1:0", "--data-dir", data, *FAST)
    port = broker.started()
    client = RawClient(port)
    metadata(client, "t")
    produce(client, "t", b"before")
    client.send_frame(fetch_request(client, "t", 1, max_wait_ms=1500))  # nothing at offset 1 yet: a long poll
    sent = time.monotonic()
    time.sleep(0.3)  # let the broker take the request in
    broker.proc.send_signal(signal.SIGTERM)
    broker.wait_for("shutting down")
    with pytest.raises(ConnectionRefusedError):  # no longer accepting
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    response = client.read_frame()  # the request in flight is still answered...
    assert response is not None
    correlation_id, body = wire.decode_response(APIS_BY_NAME["Fetch"].key, 11, memoryview(response))
    assert correlation_id == client.correlation_id and body["error_code"] == 0
    assert body["responses"][0]["partitions"][0]["high_watermark"] == 1
    assert time.monotonic() - sent >= 1.4  # ...after its full wait, not cut short
    assert client.read_frame() is None  # then the connection closes
    client.close()
    assert broker.proc.wait(15) == 0
    assert "stopped cleanly" in broker.output

    # The clean-shutdown marker: the next start reads no log data.
    broker = launch("--listen", "127.0.0.1:0", "--data-dir", data, *FAST)
    port = broker.started()
    assert "no recovery scan needed" in broker.wait_for("listening on")
    with RawClient(port) as client:
        produce(client, "t", b"after")  # the partition now has data past its clean checkpoint
    broker.kill()  # kill -9: no marker
    broker = launch("--listen", "127.0.0.1:0", "--data-dir", data, *FAST)
    broker.started()
    assert re.search(r"[1-9]\d* of \d+ partition\(s\) needed a recovery scan", broker.wait_for("listening on"))
    assert broker.stop() == 0


def test_sigint_stops_cleanly_and_dynamic_settings_survive_the_restart(launch, tmp_path):
    data = str(tmp_path / "data")
    broker = launch("--listen", "127.0.0.1:0", "--data-dir", data, *FAST)
    with RawClient(broker.started()) as client:
        metadata(client, "t")
        produce(client, "t", b"v")
        resp = client.request("AlterConfigs", 1, {"validate_only": False, "resources": [{
            "resource_type": BROKER, "resource_name": "0",
            "configs": [{"name": "log.retention.ms", "value": "3600000"}]}]})
        assert resp["responses"][0]["error_code"] == 0
    assert broker.stop(signal.SIGINT) == 0
    assert "stopped cleanly" in broker.output and "Traceback" not in broker.output

    broker = launch("--listen", "127.0.0.1:0", "--data-dir", data, *FAST)
    port = broker.started()
    assert "no recovery scan needed" in broker.wait_for("listening on")
    with RawClient(port) as client:
        setting = describe(client, BROKER, "0", "log.retention.ms")["log.retention.ms"]
        assert (setting["value"], setting["config_source"]) == ("3600000", DYNAMIC_BROKER_CONFIG)
        # Loaded before the topics' defaults were built: the topic follows it.
        assert describe(client, TOPIC, "t", "retention.ms")["retention.ms"]["value"] == "3600000"
        # AlterConfigs replaces the whole dynamic set: an empty one removes it, back to the configured value.
        client.request("AlterConfigs", 1, {"validate_only": False, "resources": [
            {"resource_type": BROKER, "resource_name": "0", "configs": []}]})
        assert describe(client, TOPIC, "t", "retention.ms")["retention.ms"]["value"] == "604800000"
    assert broker.stop() == 0


# --------------------------------------------------------------------------------------------- console script


def test_the_console_script_serve_is_python_m_kafkalite(launch, tmp_path):
    assert Path(CONSOLE_SCRIPT[0]).exists(), "the package is not installed (pip install -e .)"
    helps = [subprocess.run([*entry, "--help"], capture_output=True, text=True, timeout=30).stdout
             for entry in (PYTHON_M, CONSOLE_SCRIPT)]
    assert helps[0] == helps[1] and "--advertised-listener" in helps[0]
    broker = launch("--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"), *FAST, entry=CONSOLE_SCRIPT)
    with RawClient(broker.started()) as client:
        assert client.request("ApiVersions", 3, {"client_software_name": "t", "client_software_version": "1"})[
            "error_code"] == 0
    assert broker.stop() == 0
