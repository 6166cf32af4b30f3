#!/usr/bin/env python3
"""Benchmark of kafkalite.testing: how long a test waits for a broker, in-process against a subprocess.

    .venv/bin/python scripts/bench_testing.py              # 10 rounds
    .venv/bin/python scripts/bench_testing.py --rounds 20

Each round, taking turns in the same run:
  embedded     EmbeddedBroker().start() until a client's ApiVersions is answered; then close() (stop + rmtree)
  embedded-kafka-defaults   the same with TEST_DEFAULTS undone (50 __consumer_offsets partitions, fsync always)
  embedded-first   the first EmbeddedBroker of a fresh interpreter, timed inside it from before
               `import kafkalite.testing`: what a test session pays once for importing the broker
  subprocess   `python -m kafkalite` with the same settings as `embedded`, until ApiVersions is answered on the
               port its start-up line names; then SIGTERM and wait for the exit
Reports medians (and the slowest round) in seconds and the ratio subprocess / embedded. Goal: embedded start
<= 0.2 s and >= 10x faster than the subprocess. Absolute times on a shared machine are noise; read the ratios.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kafkalite.protocol import wire  # noqa: E402
from kafkalite.protocol.messages import APIS_BY_NAME  # noqa: E402
from kafkalite.testing import TEST_DEFAULTS, EmbeddedBroker  # noqa: E402

_LISTENING = re.compile(rb"listening on [^:]+:(\d+)")
API_VERSIONS = APIS_BY_NAME["ApiVersions"].key


def answered(port: int) -> None:
    """One ApiVersions round trip: the broker is ready for a client."""
    frame = wire.join(wire.encode_request(API_VERSIONS, 3, 1, "bench", {
        "client_software_name": "bench", "client_software_version": "1"}))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(frame)
        head = sock.recv(4, socket.MSG_WAITALL)
        (size,) = struct.unpack(">i", head)
        body = sock.recv(size, socket.MSG_WAITALL)
    assert len(body) == size


def embedded(settings: dict) -> tuple[float, float]:
    started = time.perf_counter()
    broker = EmbeddedBroker(settings=settings).start()
    answered(broker.port)
    ready = time.perf_counter()
    broker.close()
    return ready - started, time.perf_counter() - ready


FIRST_START = """
import time
started = time.perf_counter()
from kafkalite.testing import EmbeddedBroker
broker = EmbeddedBroker().start()
ready = time.perf_counter()
broker.close()
print(ready - started, time.perf_counter() - ready)
"""


def embedded_first() -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", FIRST_START], capture_output=True, text=True, check=True).stdout
    start, stop = out.split()
    return float(start), float(stop)


def subprocess_broker(settings: dict) -> tuple[float, float]:
    data_dir = tempfile.mkdtemp(prefix="kafkalite-bench-")
    sets = [arg for name, value in settings.items() for arg in ("--set", f"{name}={value}")]
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "kafkalite", "--listen", "127.0.0.1:0", "--data-dir", data_dir,
                             *sets], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for line in proc.stdout:  # ends when the process exits
            match = _LISTENING.search(line)
            if match:
                answered(int(match.group(1)))
                break
        else:
            raise RuntimeError(f"the broker exited ({proc.wait()}) without listening")
        ready = time.perf_counter()
        proc.terminate()
        proc.wait(30)
        return ready - started, time.perf_counter() - ready
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    kafka_defaults = {"offsets.topic.num.partitions": 50, "group.initial.rebalance.delay.ms": 100,
                      "kafkalite.durability": "always"}
    rows = {
        "embedded": lambda: embedded({}),
        "embedded-kafka-defaults": lambda: embedded(kafka_defaults),
        "embedded-first": embedded_first,
        "subprocess": lambda: subprocess_broker(TEST_DEFAULTS),
    }
    embedded({})  # warm up: imports and the codec's first compiled messages are paid once per test session
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, run in rows.items():  # taking turns, so a busy moment of the machine hits every row
            times[name].append(run())
    base_start = statistics.median(t[0] for t in times["embedded"])
    base_stop = statistics.median(t[1] for t in times["embedded"])
    print(f"{args.rounds} rounds; medians in seconds (slowest round in brackets); ratio = row / embedded")
    print(f"{'':<26}{'start':>16}{'ratio':>8}{'stop':>16}{'ratio':>8}")
    for name, samples in times.items():
        start = statistics.median(t[0] for t in samples)
        stop = statistics.median(t[1] for t in samples)
        print(f"{name:<26}{start:>8.3f} ({max(t[0] for t in samples):.3f}){start / base_start:>7.1f}x"
              f"{stop:>8.3f} ({max(t[1] for t in samples):.3f}){stop / base_stop:>7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
