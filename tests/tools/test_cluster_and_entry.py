"""The `kafkalite` command itself: --version, serving with flags only, usage errors per subcommand,
KAFKALITE_BOOTSTRAP, --timeout, and `kafkalite cluster info`."""

import re
import signal
import socket
import subprocess
import sys
import time

from kafkalite.cli import with_command
from toolrun import run_kafkalite, run_parallel


def test_version_on_both_entry_points():
    module = subprocess.run([sys.executable, "-m", "kafkalite", "--version"], capture_output=True, text=True,
                            timeout=30)
    script = run_kafkalite("--version")
    from importlib.metadata import version

    assert module.returncode == script.code == 0
    assert module.stdout == script.out == f"kafkalite {version('kafkalite')}\n"


def test_flags_only_mean_serve():
    assert with_command(["--listen", "h:1"], serve_when_bare=False) == ["serve", "--listen", "h:1"]
    assert with_command(["topics", "list"], serve_when_bare=False) == ["topics", "list"]
    assert with_command(["--help"], serve_when_bare=False) == ["--help"]  # the tools' overview
    assert with_command(["--help"], serve_when_bare=True) == ["serve", "--help"]  # python -m kafkalite: the broker's
    assert with_command([], serve_when_bare=True) == ["serve"]
    assert with_command(["--version"], serve_when_bare=True) == ["--version"]


def test_kafkalite_with_listen_serves(tmp_path):
    argv = [sys.executable, "-m", "kafkalite.cli", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        output = []
        for line in proc.stdout:  # the broker logs each line as it starts; a crash ends the loop
            output.append(line)
            match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if match or time.monotonic() > deadline:
                break
        assert match, "".join(output)
        with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=5):
            pass
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_wrong_flag_shows_the_subcommand_usage():
    consume, create = run_parallel(("consume", "t", "--bogus"), ("topics", "create", "t", "--partitons", "2"))
    assert consume.code == create.code == 2
    assert consume.err.startswith("usage: kafkalite consume ")
    assert consume.err.endswith("kafkalite consume: error: unrecognized arguments: --bogus\n")
    assert create.err.startswith("usage: kafkalite topics create ")


def test_bootstrap_from_the_environment(broker, topic_name):
    name = topic_name()
    created = run_kafkalite("topics", "create", name, env={"KAFKALITE_BOOTSTRAP": broker.bootstrap})
    assert created.code == 0, created.err
    # A flag still wins over the variable.
    listed = run_kafkalite("topics", "list", "--bootstrap", broker.bootstrap,
                           env={"KAFKALITE_BOOTSTRAP": "127.0.0.1:1"})
    assert name in listed.out.splitlines()


def test_timeout_on_a_broker_that_never_answers():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the backlog and are never answered
        bootstrap = f"127.0.0.1:{silent.getsockname()[1]}"
        results = run_parallel(("topics", "list", "--timeout", "0.5"), ("groups", "list", "--timeout", "0.5"),
                               ("cluster", "info", "--timeout", "0.5"), bootstrap=bootstrap)
    for result in results:
        assert result.code == 6, result
        assert result.err == "kafkalite: the broker did not answer within 0.5s (--timeout)\n"


def test_cluster_info(broker, tool):
    result = tool("cluster", "info")
    assert result.code == 0, result.err
    sections = result.out.split("\n\n")
    cluster, brokers, apis = (section.splitlines() for section in sections)
    assert cluster[:2] == ["CLUSTER", "======="] and len(cluster[2]) == 22  # the broker's cluster id
    assert brokers[:2] == ["BROKERS", "======="]
    assert [row.split() for row in brokers[2:]] == [["ID", "HOST", "PORT"], ["0*", "127.0.0.1", str(broker.port)]]
    assert apis[:2] == ["API VERSIONS", "============"] and apis[2].split() == ["API", "KEY", "MIN", "MAX"]
    rows = {row.split()[0]: row.split()[1:] for row in apis[3:]}
    assert rows["Metadata"] == ["3", "1", "12"] and rows["ApiVersions"][0] == "18"
    assert cluster[2] in run_kafkalite("nc", broker.bootstrap, '{"api": "Metadata", "body": {"topics": []}}').out
