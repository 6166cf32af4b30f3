"""The cost of transactions: librdkafka (confluent-kafka) transactional producers against idempotent ones, on
kafkalite and Apache Kafka in the same run, taking turns.

For each broker it measures the throughput of an idempotent producer (acks=all, the baseline a transactional
producer builds on) and of a transactional producer committing every 100 and every 1000 messages (begin, produce,
commit, again), all with 1 KiB messages over a 4-partition topic, and the latency of commit_transaction (p50/p99):
each transaction's records are flushed first, so the time is the commit alone (EndTxn, the coordinator's records
in __transaction_state and the markers it writes to the 4 partitions). It reports transactional / idempotent
throughput for each broker and kafkalite / Kafka for each figure. init_transactions (which creates
__transaction_state on first use) is left out of every figure.

The brokers are bench.py's: kafkalite with its defaults (on disk, fsync before acknowledging acks=all), Apache
Kafka 4 (scripts/kafka_reference.py) with its defaults ("kafka": no fsync) and with flush.messages=1 ("kafka-
flush1": an fsync per write, like kafkalite), each a single node on loopback.

    python scripts/bench_txn.py                                    # kafkalite, kafka-flush1, kafka
    python scripts/bench_txn.py --messages 5000 --rounds 1 --brokers kafkalite

Absolute figures on a shared 2-core machine are noise; read the ratios.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field

from confluent_kafka import Producer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (scripts/bench.py: the brokers and helpers)

IDEMPOTENT = 0  # the "transaction size" of the idempotent producer's rows
REFERENCES = ["kafka-flush1", "kafka"]  # ratios are kafkalite / each of these


@dataclass
class Result:
    msgs_per_s: float
    mb_per_s: float
    commits_ms: list[float] = field(default_factory=list)  # one per commit_transaction


def producer_config(bootstrap: str, transactional_id: str | None) -> dict:
    config = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
              "batch.size": 1 << 20, "queue.buffering.max.messages": 1_000_000,
              "queue.buffering.max.kbytes": 1 << 21}
    if transactional_id is not None:
        config["transactional.id"] = transactional_id
    return config


def measure(bootstrap: str, txn_size: int, messages: int, size: int) -> Result:
    """One run on a new topic: an idempotent producer (txn_size 0) or a transactional one committing every
    txn_size messages."""
    topic = f"bench-txn-{txn_size}-{time.monotonic_ns()}"
    bench.create_topic({"bootstrap.servers": bootstrap}, topic)
    transactional_id = f"bench-txn-{time.monotonic_ns()}" if txn_size else None
    producer = Producer(producer_config(bootstrap, transactional_id))
    errors = []

    def delivered(err, _msg):
        if err is not None:
            errors.append(err)

    if transactional_id is not None:
        producer.init_transactions(120)  # left out: a producer does it once (and the first creates the topic)
    else:
        producer.produce(topic, value=b"warm-up")  # connects and gets a producer id, as init_transactions does
        producer.flush(60)
    value = os.urandom(size)
    commits: list[float] = []
    started = time.perf_counter()
    if transactional_id is None:
        bench.produce_keyed(producer, topic, value, 0, messages, delivered)
        if producer.flush(120) != 0:
            raise RuntimeError("messages left unacknowledged")
    else:
        for first in range(0, messages, txn_size):
            producer.begin_transaction()
            bench.produce_keyed(producer, topic, value, first, min(txn_size, messages - first), delivered)
            if producer.flush(120) != 0:  # commit_transaction would flush too; done first, the commit is timed alone
                raise RuntimeError("messages left unacknowledged")
            committing = time.perf_counter()
            producer.commit_transaction(120)
            commits.append((time.perf_counter() - committing) * 1000)
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} delivery errors, first: {errors[0]}")
    return Result(messages / elapsed, messages * size / 1e6 / elapsed, commits)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=30000, help="messages per run (default 30000)")
    parser.add_argument("--size", type=int, default=1024, help="message size in bytes (default 1024)")
    parser.add_argument("--txn-sizes", default="100,1000", help="messages per transaction (default 100,1000)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, brokers interleaved; medians reported")
    parser.add_argument("--brokers", default="kafkalite,kafka-flush1,kafka",
                        help="brokers to run, comma-separated (default kafkalite,kafka-flush1,kafka; Apache Kafka "
                             "is left out with a note when it cannot be fetched)")
    args = parser.parse_args()
    txn_sizes = [int(s) for s in args.txn_sizes.split(",")]
    known = {"kafkalite": bench.Kafkalite, "kafka-flush1": lambda: bench.Kafka(flush1=True), "kafka": bench.Kafka}
    wanted = [name.strip() for name in args.brokers.split(",") if name.strip()]
    unknown = set(wanted) - set(known)
    if unknown:
        parser.error(f"unknown brokers {', '.join(sorted(unknown))}; known: {', '.join(known)}")
    if {"kafka", "kafka-flush1"} & set(wanted) and (reason := bench.Kafka.unavailable()) is not None:
        print(f"Apache Kafka left out: {reason}", file=sys.stderr)
        wanted = [name for name in wanted if name not in ("kafka", "kafka-flush1")]
    if not wanted:
        print("no broker to measure", file=sys.stderr)
        return 2

    load_before = os.getloadavg()
    brokers = [known[name]() for name in wanted]
    results: dict[tuple[str, int], list[Result]] = {}
    for broker in brokers:
        broker.start()
    try:
        for round_number in range(args.rounds):
            for broker in brokers if round_number % 2 == 0 else brokers[::-1]:
                for txn_size in [IDEMPOTENT, *txn_sizes]:
                    r = measure(broker.bootstrap, txn_size, args.messages, args.size)
                    results.setdefault((broker.name, txn_size), []).append(r)
                    commits = sorted(r.commits_ms)
                    print(f"{broker.name:>13} {label(txn_size):>15}: {r.msgs_per_s:>8.0f} msg/s "
                          f"{r.mb_per_s:>6.1f} MB/s" + (f" | commit p50 {bench.percentile(commits, 0.5):7.2f} ms "
                                                       f"p99 {bench.percentile(commits, 0.99):7.2f} ms"
                                                       if commits else ""), flush=True)
    finally:
        for broker in brokers:
            broker.stop()
    print_tables(args, wanted, txn_sizes, results, load_before, os.getloadavg())
    return 0


def label(txn_size: int) -> str:
    return "idempotent" if txn_size == IDEMPOTENT else f"txn of {txn_size}"


def print_tables(args, names, txn_sizes, results, load_before, load_after) -> None:
    def throughput(name: str, txn_size: int) -> float:
        runs = results.get((name, txn_size))
        return bench.median([r.msgs_per_s for r in runs]) if runs else math.nan

    def commit(name: str, txn_size: int, fraction: float) -> float:
        commits = sorted(c for r in results.get((name, txn_size), []) for c in r.commits_ms)
        return bench.percentile(commits, fraction) if commits else math.nan

    def fmt(value: float, digits: int) -> str:
        return "-" if math.isnan(value) else f"{value:.{digits}f}"

    def ratio(ours: float, theirs: float) -> str:
        return "-" if math.isnan(ours) or math.isnan(theirs) or theirs == 0 else f"{ours / theirs:.2f}×"

    print(f"\n{args.messages} messages of {args.size} B per run, 4 partitions, acks=all; throughput: median of "
          f"{args.rounds} rounds; commit latency: percentiles over every commit of the rounds. A shared, loaded "
          f"machine (load average {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end): absolute "
          "figures are noise, read the ratios.\n")
    print("| broker | producer | msg/s | vs idempotent | commit p50 ms | commit p99 ms |")
    print("|---|---|---|---|---|---|")
    for name in names:
        base = throughput(name, IDEMPOTENT)
        print(f"| {name} | idempotent | {fmt(base, 0)} | 1.00× | | |")
        for txn_size in txn_sizes:
            print(f"| {name} | {label(txn_size)} | {fmt(throughput(name, txn_size), 0)} | "
                  f"{ratio(throughput(name, txn_size), base)} | {fmt(commit(name, txn_size, 0.5), 2)} | "
                  f"{fmt(commit(name, txn_size, 0.99), 2)} |")
    references = [ref for ref in REFERENCES if ref in names]
    if "kafkalite" not in names or not references:
        return
    print("\nRatios kafkalite / reference (throughput: >1 is kafkalite faster; commit latency: <1 is kafkalite "
          "faster).\n")
    print("| producer | reference | throughput | commit p50 | commit p99 |")
    print("|---|---|---|---|---|")
    for txn_size in [IDEMPOTENT, *txn_sizes]:
        for ref in references:
            cells = [ratio(throughput("kafkalite", txn_size), throughput(ref, txn_size))]
            if txn_size != IDEMPOTENT:
                cells += [ratio(commit("kafkalite", txn_size, q), commit(ref, txn_size, q)) for q in (0.5, 0.99)]
            else:
                cells += ["", ""]
            print(f"| {label(txn_size)} | {ref} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
