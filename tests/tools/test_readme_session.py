"""The README's command-line session, replayed in its written order on a fresh broker: every `$ ` command of the
```console blocks of its "Command-line tools" section runs through a shell, and its output (stdout and stderr
together) must be what the README shows, up to timestamps, the cluster id and the broker's port."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from brokerproc import BrokerProcess

README = Path(__file__).resolve().parents[2] / "README.md"
README_BOOTSTRAP = "127.0.0.1:9092"  # the address of `make run`, as the README writes it
README_DEAD_BOOTSTRAP = "127.0.0.1:9999"  # the README's example of an address where nothing listens

# The tools talk to 127.0.0.1:9092 by default: send them to the test's broker instead, unless the command names
# a broker itself (nc's first argument, or --bootstrap). stderr goes where stdout goes, as on a terminal.
SHELL_PRELUDE = """
exec 2>&1
kafkalite() {
    if [ "$1" = nc ]; then command kafkalite "$@"; return; fi
    for arg in "$@"; do [ "$arg" = --bootstrap ] && { command kafkalite "$@"; return; }; done
    command kafkalite "$@" --bootstrap "$README_TEST_BOOTSTRAP"
}
"""


def session_steps(readme: str) -> list[tuple[str, str]]:
    """(command, expected output) for every `$ ` line of the console blocks in "## Command-line tools"."""
    section = readme.split("\n## Command-line tools\n", 1)[1].split("\n## ", 1)[0]
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", section, re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
    return [(command, "\n".join(lines)) for command, lines in steps]


def normalized(text: str) -> str:
    text = re.sub(r'"timestamp": \d+', '"timestamp": TIMESTAMP', text)
    text = re.sub(r'"cluster_id": "[^"]*"', '"cluster_id": "CLUSTER-ID"', text)
    return text.rstrip("\n")


def closed_port() -> socket.socket:
    """A loopback port bound but not listening: a connection to it is refused, and no other test can take it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def test_the_readme_session_runs_in_its_written_order(tmp_path):
    steps = session_steps(README.read_text())
    assert len(steps) >= 15 and steps[0][0].startswith("kafkalite topics create demo"), steps[:1]
    broker = BrokerProcess(str(tmp_path / "data"), "--set", "offsets.topic.num.partitions=1").start()
    dead = closed_port()
    try:
        port, dead_port = broker.port, dead.getsockname()[1]
        env = dict(os.environ, README_TEST_BOOTSTRAP=broker.bootstrap, PYTHONUNBUFFERED="1",
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        env = {k: v for k, v in env.items() if k != "KAFKALITE_BOOTSTRAP"}
        mismatches = []
        for command, expected in steps:
            runnable = command.replace(README_BOOTSTRAP, broker.bootstrap).replace(
                README_DEAD_BOOTSTRAP, f"127.0.0.1:{dead_port}")
            done = subprocess.run(["bash", "-c", SHELL_PRELUDE + runnable], capture_output=True,
                                  text=True, timeout=60, env=env, cwd=tmp_path)
            actual = (done.stdout + done.stderr).replace(broker.bootstrap, README_BOOTSTRAP).replace(
                f'"port": {port}', '"port": 9092').replace(f"127.0.0.1:{dead_port}", README_DEAD_BOOTSTRAP)
            if normalized(actual) != normalized(expected):
                mismatches.append(f"$ {command}\n--- the README shows:\n{expected}\n--- it printed:\n{actual}")
        assert not mismatches, f"{len(mismatches)} of {len(steps)} commands differ:\n\n" + "\n\n".join(mismatches)
    finally:
        dead.close()
        broker.kill()
