"""Consumer-group benchmark: how fast real clients get going and rebalance against kafkalite.

For each client (confluent-kafka/librdkafka, aiokafka, kafka-python, kafkajs) it runs group
members as separate processes (tests/interop/group_member.py and node/group_member.js, which print
timestamped JSON events) against one kafkalite broker with its defaults, over a 6-partition topic
holding some messages, and measures:

- first message: from subscribe to the first message read, for a new group, a lone member, with
  the client's own default settings;
- join: from a third member's subscribe until the three own two partitions each;
- leave: from SIGTERM to a member (it leaves the group cleanly) until the other two own three each;
- death: from kill -9 of a member until the other two own three each. The broker expires a member
  one session timeout after its last heartbeat, which came up to one heartbeat interval before the
  kill: this lies between session - heartbeat and session, plus the rebalance.

The rebalance figures use session.timeout.ms=6000 and heartbeat.interval.ms=1000 (as the interop
tests do): members learn of a rebalance from a heartbeat response, so up to one heartbeat interval
of each join and leave figure is the members' wait for their next heartbeat. "round" is the part
after the last member noticed (its revocation callback, or kafkajs's rebalancing event) until the
group was balanced again: JoinGroup and SyncGroup through the broker, and the clients' own work.

    python scripts/bench_groups.py                     # every client, 3 repetitions, medians
    python scripts/bench_groups.py --clients confluent --reps 5

Absolute times on a shared 2-core machine are noise; the medians over repetitions are the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTEROP = os.path.join(ROOT, "tests", "interop")
NODE_DIR = os.path.join(INTEROP, "node")
CLIENTS = ["confluent", "aiokafka", "kafka-python", "kafkajs"]
PARTITIONS = 6
SESSION_MS = 6000
HEARTBEAT_MS = 1000


class Broker:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="bench-groups-")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kafkalite", "--listen", "127.0.0.1:0",
             "--data-dir", os.path.join(self.dir, "data")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in self.proc.stdout:  # until "listening on", or the end of its output
            match = re.search(r"listening on [^:]+:(\d+)", line)
            if match:
                self.bootstrap = f"127.0.0.1:{match.group(1)}"
                break
        else:
            raise RuntimeError("the broker did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Member:
    def __init__(self, client: str, bootstrap: str, topic: str, group: str, *, defaults: bool = False):
        timeouts = ["--session-ms", "0", "--heartbeat-ms", "0"] if defaults else \
            ["--session-ms", str(SESSION_MS), "--heartbeat-ms", str(HEARTBEAT_MS)]
        opts = [*timeouts, "--max-seconds", "120", "--no-commit"]
        if client == "kafkajs":
            cmd = ["node", os.path.join(NODE_DIR, "group_member.js"), bootstrap, topic, group, *opts]
        else:
            cmd = [sys.executable, os.path.join(INTEROP, "group_member.py"), client, bootstrap, topic, group, *opts]
        self.events: list[dict] = []
        self.proc = subprocess.Popen(cmd, cwd=NODE_DIR if client == "kafkajs" else INTEROP,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            try:
                self.events.append(json.loads(line))
            except ValueError:
                pass

    def first(self, kind: str, after: float = 0.0) -> dict | None:
        return next((e for e in list(self.events) if e["event"] == kind and e["t"] >= after), None)

    @property
    def owned(self) -> set[int]:
        owned: set[int] = set()
        for e in list(self.events):
            if e["event"] == "assigned":
                owned = set(e["partitions"])
            elif e["event"] == "revoked":
                owned -= set(e["partitions"])
        return owned

    def last_assigned(self) -> float:
        return max((e["t"] for e in list(self.events) if e["event"] == "assigned"), default=0.0)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise TimeoutError(what)


def balanced(members: list[Member], size: int):
    def check() -> bool:
        owned = [m.owned for m in members]
        return all(len(o) == size for o in owned) and sorted(p for o in owned for p in o) == list(range(PARTITIONS))
    return check


def noticed(members: list[Member], since: float) -> float:
    """When the last of `members` began rejoining after `since` (the first revocation or rebalancing event of each)."""
    firsts = []
    for m in members:
        times = [e["t"] for e in list(m.events) if e["event"] in ("revoked", "rebalancing") and e["t"] >= since]
        firsts.append(min(times, default=float("nan")))
    return max(firsts)


def settled(members: list[Member]) -> float:
    return max(m.last_assigned() for m in members)


def pause() -> None:
    """Let the group settle, then wait a random part of a heartbeat interval: the next event then falls
    anywhere between two heartbeats, as it would in life, not always at the same phase."""
    time.sleep(HEARTBEAT_MS / 1000 * (1 + random.random()))


def one_run(client: str, bootstrap: str, topic: str, rep: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    started: list[Member] = []
    try:
        # A new group, one member, the client's defaults: subscribe -> first message.
        lone = Member(client, bootstrap, topic, f"first-{client}-{rep}", defaults=True)
        started.append(lone)
        wait_for(lambda: lone.first("consumed"), 60, "a first message")
        figures["first message"] = lone.first("consumed")["t"] - lone.first("started")["t"]
        lone.stop()

        group = f"rebalance-{client}-{rep}"
        pair = [Member(client, bootstrap, topic, group) for _ in range(2)]
        started += pair
        wait_for(balanced(pair, 3), 60, "two members to settle")
        pause()

        third = Member(client, bootstrap, topic, group)
        started.append(third)
        trio = [*pair, third]
        wait_for(balanced(trio, 2), 60, "the join to settle")
        joined_at = third.first("started")["t"]
        figures["join"] = settled(trio) - joined_at
        figures["join round"] = settled(trio) - noticed(pair, joined_at)
        pause()

        left_at = time.time()
        third.stop()
        wait_for(balanced(pair, 3), 60, "the leave to settle")
        figures["leave"] = settled(pair) - left_at
        figures["leave round"] = settled(pair) - noticed(pair, left_at)
        pause()

        doomed = Member(client, bootstrap, topic, group)  # back to three, then one dies
        started.append(doomed)
        trio = [*pair, doomed]
        wait_for(balanced(trio, 2), 60, "three members again")
        pause()
        killed_at = time.time()
        doomed.kill()
        wait_for(balanced(pair, 3), SESSION_MS / 1000 + 60, "the death to settle")
        figures["death"] = settled(pair) - killed_at
        figures["death round"] = settled(pair) - noticed(pair, killed_at)
    finally:
        for m in started:
            m.stop()
    return figures


def fill(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(600):
        producer.produce(topic, value=f"m-{i}".encode(), partition=i % PARTITIONS)
    assert producer.flush(30) == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", nargs="+", default=CLIENTS, choices=CLIENTS)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if "kafkajs" in args.clients and not (shutil.which("node")
                                          and os.path.isdir(os.path.join(NODE_DIR, "node_modules", "kafkajs"))):
        print("kafkajs skipped: node or tests/interop/node/node_modules missing", file=sys.stderr)
        args.clients = [c for c in args.clients if c != "kafkajs"]

    broker = Broker()
    try:
        topic = "bench-groups"
        fill(broker.bootstrap, topic)

        results: dict[str, dict[str, list[float]]] = {}
        for client in args.clients:
            for rep in range(args.reps):
                figures = one_run(client, broker.bootstrap, topic, rep)
                print(client, rep, {k: round(v, 3) for k, v in figures.items()}, file=sys.stderr, flush=True)
                for name, value in figures.items():
                    results.setdefault(client, {}).setdefault(name, []).append(value)
    finally:
        broker.stop()

    names = ["first message", "join", "join round", "leave", "leave round", "death", "death round"]
    print(f"\nmedians of {args.reps} runs, seconds (rebalances: session {SESSION_MS} ms, heartbeat {HEARTBEAT_MS} ms)")
    print(f"{'client':<14}" + "".join(f"{n:>17}" for n in names))
    for client, figures in results.items():
        print(f"{client:<14}" + "".join(f"{statistics.median(figures[n]):>17.2f}" for n in names))


if __name__ == "__main__":
    main()
