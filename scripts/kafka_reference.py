"""Apache Kafka as the reference broker: fetch it from Maven Central, run it on loopback, run its tools.

As a module (tests and benchmarks import it):

    ensure_kafka()                        # the jars, fetched once into ~/.cache/kafkalite/kafka-<ver>/libs
    with KafkaBroker(data_dir) as kafka:  # one KRaft node, broker and controller in one process
        run_tool("kafka-topics", ["--bootstrap-server", kafka.bootstrap, "--list"])
    with KafkaCluster(data_dir, 3) as cluster: ...   # three such nodes, a quorum of three

As a command:

    python scripts/kafka_reference.py fetch
    python scripts/kafka_reference.py run --data-dir D [--port P] [--cluster 3] [--override key=value ...]
    python scripts/kafka_reference.py tool kafka-topics --bootstrap-server 127.0.0.1:9092 --list

Nothing here needs the kafkalite package: it runs with any Python 3.10+, java 17+ and mvn.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import fcntl
import functools
import hashlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

KAFKA_VERSION = "4.1.1"  # runs on Java 17, the machine's default JDK
SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.24.3"  # the log4j that kafka 4.1.1 itself depends on: its slf4j binding makes the logs appear

CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kafkalite" / f"kafka-{KAFKA_VERSION}"
LIBS_DIR = CACHE_DIR / "libs"
_COMPLETE = LIBS_DIR / ".complete"

# A JVM that starts fast: tests start many and each lives briefly. Benchmarks that measure Kafka's throughput
# pass SERVER_JVM_OPTS (what Kafka's own start script uses) as jvm_opts instead.
QUICK_JVM_OPTS = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-Djava.awt.headless=true"]
SERVER_JVM_OPTS = ["-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
                   "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true"]

# The command-line tools by their script names (bin/kafka-*.sh in Kafka's distribution) and main classes.
TOOLS = {
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-configs": "kafka.admin.ConfigCommand",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-delete-records": "org.apache.kafka.tools.DeleteRecordsCommand",
    "kafka-leader-election": "org.apache.kafka.tools.LeaderElectionCommand",
    "kafka-reassign-partitions": "org.apache.kafka.tools.reassign.ReassignPartitionsCommand",
    "kafka-transactions": "org.apache.kafka.tools.TransactionsCommand",
    "kafka-metadata-quorum": "org.apache.kafka.tools.MetadataQuorumCommand",
    "kafka-broker-api-versions": "org.apache.kafka.tools.BrokerApiVersionsCommand",
    "kafka-producer-perf-test": "org.apache.kafka.tools.ProducerPerformance",
    "kafka-consumer-perf-test": "org.apache.kafka.tools.ConsumerPerformance",
    "kafka-e2e-latency": "org.apache.kafka.tools.EndToEndLatency",
    "kafka-streams-application-reset": "org.apache.kafka.tools.StreamsResetter",
    "kafka-acls": "org.apache.kafka.tools.AclCommand",
    "kafka-cluster": "org.apache.kafka.tools.ClusterTool",
    "kafka-storage": "kafka.tools.StorageTool",
    "kafka-dump-log": "kafka.tools.DumpLogSegments",
}

# A topic config given as an override sets its broker-wide default, which server.properties names otherwise
# (Kafka's ServerTopicConfigSynonyms): {"flush.messages": "1"} becomes log.flush.interval.messages=1. Kafka
# itself would ignore flush.messages in server.properties with a warning.
TOPIC_CONFIG_BROKER_NAMES = {
    "cleanup.policy": "log.cleanup.policy",
    "delete.retention.ms": "log.cleaner.delete.retention.ms",
    "file.delete.delay.ms": "log.segment.delete.delay.ms",
    "flush.messages": "log.flush.interval.messages",
    "flush.ms": "log.flush.interval.ms",
    "index.interval.bytes": "log.index.interval.bytes",
    "max.compaction.lag.ms": "log.cleaner.max.compaction.lag.ms",
    "max.message.bytes": "message.max.bytes",
    "message.timestamp.after.max.ms": "log.message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms": "log.message.timestamp.before.max.ms",
    "message.timestamp.type": "log.message.timestamp.type",
    "min.cleanable.dirty.ratio": "log.cleaner.min.cleanable.ratio",
    "min.compaction.lag.ms": "log.cleaner.min.compaction.lag.ms",
    "preallocate": "log.preallocate",
    "retention.bytes": "log.retention.bytes",
    "retention.ms": "log.retention.ms",
    "segment.bytes": "log.segment.bytes",
    "segment.index.bytes": "log.index.size.max.bytes",
    "segment.jitter.ms": "log.roll.jitter.ms",
    "segment.ms": "log.roll.ms",
}

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kafkalite.reference</groupId>
  <artifactId>kafka-reference</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_{scala}</artifactId><version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

# Servers log at INFO to their stdout (a file in their data dir); tools only print warnings, to stderr, so a
# tool's stdout holds its answer alone.
_LOG4J_SERVER = """status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.kafka_request.name = kafka.request.logger
logger.kafka_request.level = warn
"""
_LOG4J_TOOLS = """status = warn
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = err
"""


class KafkaUnavailable(Exception):
    """Java, Maven or the jars are missing: the reason says which and what to do."""


# ---------------------------------------------------------------- the jars


@functools.lru_cache(maxsize=None)
def java_executable() -> str:
    """JAVA_HOME's java, else the one on PATH; it must be Java 17 or newer (Kafka 4's brokers need it)."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    if java is None:
        raise KafkaUnavailable("java is not installed (Kafka needs Java 17+: apt-get install openjdk-17-jdk-headless)")
    # `java -version` prints e.g. 'openjdk version "17.0.15" 2025-04-15', or "1.8.0_392" before Java 9.
    banner = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    found = re.search(r'version "(?:1\.)?(\d+)', banner)
    if found is None or int(found.group(1)) < 17:
        first_line = banner.splitlines()[0] if banner else "no version"
        raise KafkaUnavailable(f"{java} is {first_line!r}; Kafka {KAFKA_VERSION} needs Java 17+ (set JAVA_HOME)")
    return java


def ensure_kafka() -> str:
    """The directory holding Kafka's jars, fetched with mvn the first time. Fast when they are cached."""
    if _COMPLETE.exists():
        return str(LIBS_DIR)
    java_executable()
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaUnavailable(f"mvn is not installed and Kafka {KAFKA_VERSION} is not cached in {LIBS_DIR} "
                               "(apt-get install maven)")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two processes fetching at once: the second waits, then finds it done
        if _COMPLETE.exists():
            return str(LIBS_DIR)
        pom = CACHE_DIR / "pom.xml"
        pom.write_text(_POM.format(scala=SCALA_VERSION, kafka=KAFKA_VERSION, log4j=LOG4J_VERSION))
        staging = CACHE_DIR / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            done = subprocess.run(
                [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", "-DincludeScope=runtime",
                 f"-DoutputDirectory={staging}"], capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            raise KafkaUnavailable(f"mvn took over 15 minutes fetching Kafka {KAFKA_VERSION}") from None
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            raise KafkaUnavailable(f"mvn could not fetch Kafka {KAFKA_VERSION}:\n{tail}")
        (staging / "log4j2-server.properties").write_text(_LOG4J_SERVER)
        (staging / "log4j2-tools.properties").write_text(_LOG4J_TOOLS)
        shutil.rmtree(LIBS_DIR, ignore_errors=True)
        staging.rename(LIBS_DIR)
        _COMPLETE.touch()
    return str(LIBS_DIR)


def java_command(main_class: str, *, heap: str, log4j: str, jvm_opts: list[str] | None = None) -> list[str]:
    libs = ensure_kafka()
    return [java_executable(), f"-Xmx{heap}", f"-Xms{heap}" if log4j == "server" else "-Xms32m",
            *(QUICK_JVM_OPTS if jvm_opts is None else jvm_opts),
            f"-Dlog4j2.configurationFile={Path(libs) / f'log4j2-{log4j}.properties'}",
            "-cp", str(Path(libs) / "*"), main_class]


def run_tool(tool_class_or_name: str, args: list[str], *, input: str | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess:
    """Runs one of Kafka's command-line tools as a user runs bin/kafka-<name>.sh; the result is not checked.

    The tool is named like its script ("kafka-topics", "kafka-topics.sh") or by its main class.
    """
    name = tool_class_or_name.removesuffix(".sh")
    main_class = TOOLS.get(name, name)
    if "." not in main_class:
        raise ValueError(f"unknown Kafka tool {tool_class_or_name!r}; known: {', '.join(sorted(TOOLS))}")
    archive_opts, dumping = _class_archive_opts(main_class)
    command = java_command(main_class, heap="256m", log4j="tools", jvm_opts=QUICK_JVM_OPTS + archive_opts)
    try:
        done = subprocess.run(command + list(args), input=input, capture_output=True, text=True, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)
    finally:
        if dumping is not None:
            staged, archive = dumping
            if staged.exists():
                os.replace(staged, archive)  # whole, or not at all: a concurrent tool never reads half of one
    return done


def _class_archive_opts(main_class: str) -> tuple[list[str], tuple[Path, Path] | None]:
    """A class-data-sharing archive makes each tool's JVM start two to three times faster (it skips parsing
    and verifying Kafka's classes). Each tool has its own, written at exit by its first run (the classes a
    tool loads differ: ConfigCommand alone needs Scala's); later runs map it. It belongs to one JVM build,
    hence the fingerprint. The JVM logs only errors, to stderr: a tool's stdout holds its answer alone."""
    java = os.path.realpath(java_executable())
    fingerprint = f"{java}:{os.stat(java).st_mtime_ns}:{KAFKA_VERSION}".encode()
    archive = Path(ensure_kafka()) / f"{main_class}-{hashlib.sha1(fingerprint).hexdigest()[:12]}.jsa"
    quiet = ["-Xlog:disable", "-Xlog:all=error:stderr"]
    if archive.exists():
        return [f"-XX:SharedArchiveFile={archive}", *quiet], None
    staged = archive.with_name(f"{archive.name}.{os.getpid()}.{threading.get_ident()}")
    return [f"-XX:ArchiveClassesAtExit={staged}", *quiet], (staged, archive)


# ---------------------------------------------------------------- brokers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_cluster_id() -> str:
    """What `kafka-storage random-uuid` prints: 16 random bytes in URL-safe base64, not starting with '-'."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def metadata_brokers(port: int, timeout: float = 2.0) -> tuple[list[int], int]:
    """(node ids, controller id) from a Metadata v1 request for no topics; raises OSError when none answers."""
    client_id = b"kafka-reference"
    body = struct.pack(">hhih", 3, 1, 1, len(client_id)) + client_id + struct.pack(">i", 0)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _recv_exactly(sock, 4))[0]
        data = _recv_exactly(sock, size)
    pos = 4  # correlation id
    (count,) = struct.unpack_from(">i", data, pos)
    pos += 4
    nodes = []
    for _ in range(count):
        node_id, host_len = struct.unpack_from(">ih", data, pos)
        pos += 6 + host_len + 4  # node id, host, port
        (rack_len,) = struct.unpack_from(">h", data, pos)
        pos += 2 + max(rack_len, 0)
        nodes.append(node_id)
    (controller_id,) = struct.unpack_from(">i", data, pos)
    return sorted(nodes), controller_id


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        chunks += chunk
    return bytes(chunks)


_RUNNING: set["KafkaBroker"] = set()  # killed when this Python process exits, so no JVM outlives its owner


@atexit.register
def _kill_leftovers() -> None:
    for broker in list(_RUNNING):
        broker.kill()


class KafkaBroker:
    """One Apache Kafka node in KRaft mode (broker and controller in one JVM) on a loopback port.

    The data dir is formatted on the first start and kept: a restart (stop, then start) finds its data.
    Its node id is 0, like kafkalite's default, so the two answer alike (a cluster's nodes are 0..n-1).
    `overrides` add or replace server.properties keys, e.g. {"flush.messages": "1"} for an fsync per write
    (a topic config's name sets its broker-wide default: see TOPIC_CONFIG_BROKER_NAMES).
    """

    def __init__(self, data_dir: str, port: int = 0, *, heap: str = "512m", overrides: dict[str, str] | None = None,
                 jvm_opts: list[str] | None = None, node_id: int = 0, controller_port: int = 0,
                 quorum: dict[int, int] | None = None, cluster_size: int = 1, cluster_id: str | None = None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.heap = heap
        self.overrides = dict(overrides or {})
        self.jvm_opts = jvm_opts
        self.node_id = node_id
        self.quorum = quorum or {node_id: self.controller_port}  # node id -> controller port
        self.cluster_size = cluster_size
        self.cluster_id = cluster_id
        self.proc: subprocess.Popen | None = None
        self._log = None
        # A port picked here may be taken by someone else before the JVM binds it: then start picks again,
        # until the first start succeeds (a restart keeps its address, so clients find it again).
        self._ports_movable = not port and not controller_port and quorum is None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "kafka.out"

    def server_properties(self) -> dict[str, str]:
        internal_rf = str(min(self.cluster_size, 3))
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": ",".join(f"{n}@127.0.0.1:{p}" for n, p in sorted(self.quorum.items())),
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "logs"),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": internal_rf,
            "transaction.state.log.replication.factor": internal_rf,
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": internal_rf,
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
        props.update((TOPIC_CONFIG_BROKER_NAMES.get(key, key), value) for key, value in self.overrides.items())
        return props

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in self.server_properties().items()))
        return path

    def _format_command(self) -> list[str] | None:
        """The storage tool's command when the data dir is not formatted yet, else None."""
        config = self._write_config()
        if (self.data_dir / "logs" / "meta.properties").exists():
            return None
        self.cluster_id = self.cluster_id or new_cluster_id()
        return java_command(TOOLS["kafka-storage"], heap="256m", log4j="tools") + [
            "format", "-t", self.cluster_id, "-c", str(config), "--ignore-formatted"]

    def format(self, timeout: float = 60.0) -> None:
        command = self._format_command()
        if command is not None:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
            if done.returncode != 0:
                raise RuntimeError(f"kafka-storage format failed:\n{done.stdout}{done.stderr}")

    def launch(self) -> None:
        """Starts the JVM without waiting for it to answer (the data dir must be formatted)."""
        self._write_config()
        self._log = open(self.log_path, "a")
        self._log_start = self._log.tell()
        self.proc = subprocess.Popen(
            java_command("kafka.Kafka", heap=self.heap, log4j="server", jvm_opts=self.jvm_opts)
            + [str(self.data_dir / "server.properties")],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        _RUNNING.add(self)

    def wait_ready(self, timeout: float = 90.0, expect_brokers: int = 1) -> None:
        """Until Metadata on this node's port lists `expect_brokers` unfenced brokers and a controller."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"kafka exited with {self.proc.returncode if self.proc else None}:\n"
                                   f"{self.log_tail()}")
            with contextlib.suppress(OSError, struct.error):
                nodes, controller = metadata_brokers(self.port)
                if len(nodes) >= expect_brokers and controller >= 0:
                    return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"kafka did not answer within {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.1)  # polling a port with a deadline: the JVM gives no other readiness signal

    def start(self, timeout: float = 90.0) -> "KafkaBroker":
        """Formats the data dir if needed, starts the JVM and returns once it answers Kafka requests.

        A benchmark that times start-up alone calls format() first, then launch() and wait_ready()."""
        if self.pid is not None:
            return self
        self.format()
        for attempt in range(3):
            self.launch()
            try:
                self.wait_ready(timeout, self.cluster_size)
                break
            except RuntimeError:
                if not (self._ports_movable and attempt < 2 and "Address already in use" in self._launch_log()):
                    raise
                self.port, self.controller_port = free_port(), free_port()
                self.quorum = {self.node_id: self.controller_port}
        self._ports_movable = False
        return self

    def _launch_log(self) -> str:
        with contextlib.suppress(OSError), open(self.log_path, errors="replace") as log:
            log.seek(self._log_start)
            return log.read()
        return ""

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a controlled shutdown), then kill -9 if it has not exited within `timeout`."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def kill(self) -> None:
        """kill -9: an unclean stop."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._close_log()

    def _close_log(self) -> None:
        _RUNNING.discard(self)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def __enter__(self) -> "KafkaBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class KafkaCluster:
    """n KRaft nodes on loopback, each broker and controller, the n controllers one quorum (a static voter set).

    Internal topics (offsets, transactions) are replicated min(n, 3) times with min.insync.replicas 1, so killing
    one node keeps consumer groups alive; `overrides` apply to every node.
    """

    def __init__(self, data_dir: str, n: int = 3, *, heap: str = "512m", overrides: dict[str, str] | None = None,
                 jvm_opts: list[str] | None = None):
        self.data_dir = Path(data_dir)
        ports = [(free_port(), free_port()) for _ in range(n)]
        quorum = {node_id: controller for node_id, (_, controller) in enumerate(ports)}
        cluster_id = new_cluster_id()
        self.brokers = [
            KafkaBroker(str(self.data_dir / f"node-{node_id}"), port, heap=heap, overrides=overrides,
                        jvm_opts=jvm_opts, node_id=node_id, controller_port=controller, quorum=quorum,
                        cluster_size=n, cluster_id=cluster_id)
            for node_id, (port, controller) in enumerate(ports)]

    @property
    def bootstrap(self) -> str:
        return ",".join(broker.bootstrap for broker in self.brokers)

    def start(self, timeout: float = 120.0) -> "KafkaCluster":
        try:
            # The storage tools run side by side (each a JVM start), then the nodes, which need each other.
            formats = [(b, cmd) for b in self.brokers if (cmd := b._format_command()) is not None]
            running = [(b, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
                       for b, cmd in formats]
            for broker, proc in running:
                out, _ = proc.communicate(timeout=timeout)
                if proc.returncode != 0:
                    raise RuntimeError(f"kafka-storage format failed for {broker.data_dir}:\n{out}")
            for broker in self.brokers:
                broker.launch()
            for broker in self.brokers:
                broker.wait_ready(timeout, len(self.brokers))
        except BaseException:
            for broker in self.brokers:
                broker.kill()
            raise
        return self

    def stop(self, timeout: float = 30.0) -> None:
        for broker in self.brokers:
            if broker.proc is not None and broker.proc.poll() is None:
                broker.proc.send_signal(signal.SIGTERM)
        for broker in self.brokers:
            broker.stop(timeout)

    def kill(self) -> None:
        for broker in self.brokers:
            broker.kill()

    def __enter__(self) -> "KafkaCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("fetch", help="fetch Kafka's jars into the cache; print its directory")
    run = commands.add_parser("run", help="run a broker (or --cluster N) until Ctrl-C; print the bootstrap address")
    run.add_argument("--data-dir", required=True)
    run.add_argument("--port", type=int, default=0, help="the client port (single broker); 0 picks a free one")
    run.add_argument("--cluster", type=int, default=0, metavar="N", help="run N nodes as one KRaft quorum")
    run.add_argument("--heap", default="512m")
    run.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                     help="a server.properties key to add or replace, e.g. flush.messages=1")
    tool = commands.add_parser("tool", help="run one of Kafka's tools, e.g. `tool kafka-topics --list ...`")
    tool.add_argument("name", help=", ".join(sorted(TOOLS)))
    tool.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(ensure_kafka())
            return 0
        if args.command == "tool" and args.name.removesuffix(".sh") not in TOOLS and "." not in args.name:
            parser.error(f"unknown Kafka tool {args.name!r}; known: {', '.join(sorted(TOOLS))}")
        if args.command == "tool":
            done = run_tool(args.name, args.args, input=None if sys.stdin.isatty() else sys.stdin.read(),
                            timeout=24 * 3600)
            sys.stdout.write(done.stdout)
            sys.stderr.write(done.stderr)
            return done.returncode
        overrides = {}
        for item in args.override:
            key, sep, value = item.partition("=")
            if not sep:
                parser.error(f"--override takes KEY=VALUE, got {item!r}")
            overrides[key] = value
        ensure_kafka()
    except KafkaUnavailable as exc:
        print(f"kafka_reference: {exc}", file=sys.stderr)
        return 2
    if args.cluster:
        server = KafkaCluster(args.data_dir, args.cluster, heap=args.heap, overrides=overrides)
    else:
        server = KafkaBroker(args.data_dir, args.port, heap=args.heap, overrides=overrides)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    started = time.monotonic()
    server.start()
    print(f"kafka {KAFKA_VERSION} answering on {server.bootstrap} after {time.monotonic() - started:.1f}s "
          f"(data in {args.data_dir}); Ctrl-C stops it", flush=True)
    try:
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
