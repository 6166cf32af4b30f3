"""The fault harness behind scripts/torture.py and tests/reliability/ (RELIABILITY.md R1, R4, R5, R6).

Oracle: every message value is unique (`<producer>:<seq>`); the harness records what the broker
acknowledged (value -> partition, offset), then reads every partition back over a raw socket and checks
  - no acknowledged message is missing, and each still sits at the offset it was acknowledged at;
  - no value appears twice in the log (idempotent producers);
  - per producer and partition, sequence order == offset order; offsets are dense.
Every broker and client process started here is stopped again, also when a check fails.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
ROOT = os.path.dirname(TESTS)
for _p in (TESTS, ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from brokerproc import BrokerProcess  # noqa: E402
from rawclient import RawClient  # noqa: E402

from kafkalite.protocol.record_batch import iter_batches  # noqa: E402

LAUNCHER = os.path.join(ROOT, "scripts", "torture_broker.py")


class CheckFailed(AssertionError):
    pass


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------- the broker


class Broker(BrokerProcess):
    """A broker process run through scripts/torture_broker.py (the `serve` code path, plus an optional
    switchable file-system fault). Adds SIGSTOP/SIGCONT and memory readings."""

    def __init__(self, data_dir: str, *extra: str, fault_file: str | None = None, port: int = 0):
        super().__init__(data_dir, *extra, port=port)
        self.fault_file = fault_file
        self.starts = 0

    def start(self, timeout: float = 60.0) -> "Broker":
        import re

        cmd = [sys.executable, LAUNCHER, "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir,
               "--log-level", "INFO", *self.extra]
        if self.fault_file:
            cmd += ["--fault-file", self.fault_file]
        self.output = []
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        found = threading.Event()
        pattern = re.compile(r"listening on [^:]+:(\d+)")

        def pump(proc, out):
            for line in proc.stdout:
                out.append(line)
                if len(out) > 2000:
                    del out[:1000]
                match = pattern.search(line)
                if match and not found.is_set():
                    self.port = int(match.group(1))
                    found.set()

        threading.Thread(target=pump, args=(self.proc, self.output), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("broker did not start:\n" + "".join(self.output[-50:]))
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sigstop(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def sigcont(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a stopped process dies of SIGKILL too, but be sure
            self.proc.kill()
            self.proc.wait(10)

    def memory_kb(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in KiB: the resident set now and its peak."""
        values = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":")
                    values[key] = int(value.split()[0])
        return values.get("VmRSS", 0), values.get("VmHWM", 0)

    def tail(self, n: int = 30) -> str:
        return "".join(self.output[-n:])


# ---------------------------------------------------------------------------------------------- raw requests


def create_topic(port: int, name: str, partitions: int, configs: dict | None = None) -> int:
    with RawClient(port) as client:
        response = client.request("CreateTopics", 7, {"topics": [{
            "name": name, "num_partitions": partitions, "replication_factor": 1, "assignments": [],
            "configs": [{"name": k, "value": v} for k, v in (configs or {}).items()]}], "timeout_ms": 10000})
    return response["topics"][0]["error_code"]


def produce_raw(port: int, topic: str, partition: int, batch: bytes, acks: int = -1, timeout: float = 10) -> dict:
    with RawClient(port, timeout=timeout) as client:
        response = client.request("Produce", 9, {
            "transactional_id": None, "acks": acks, "timeout_ms": 5000,
            "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": batch}]}]})
    return response["responses"][0]["partition_responses"][0]


def read_partition(port: int, topic: str, partition: int, timeout: float = 30) -> tuple[int, list[tuple[int, bytes]]]:
    """(log start offset, [(offset, value)]) of a whole partition, read with Fetch v12 over a raw socket."""
    out: list[tuple[int, bytes]] = []
    offset = None
    start = 0
    with RawClient(port, timeout=timeout) as client:
        while True:
            response = client.request("Fetch", 12, {
                "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 4 << 20, "isolation_level": 0,
                "topics": [{"topic": topic, "partitions": [{
                    "partition": partition, "fetch_offset": offset if offset is not None else 0,
                    "partition_max_bytes": 4 << 20}]}]})
            part = response["responses"][0]["partitions"][0]
            if part["error_code"] == 1 and offset is None:  # OFFSET_OUT_OF_RANGE: start at the log start
                offset = part["log_start_offset"]
                continue
            if part["error_code"]:
                raise CheckFailed(f"fetch {topic}-{partition}@{offset} failed with error {part['error_code']}")
            if offset is None:
                offset = start = part["log_start_offset"]
            records = part["records"]
            if isinstance(records, list):
                records = b"".join(bytes(r) for r in records)
            got = 0
            for batch in iter_batches(records or b""):
                for record in batch.records():
                    if record.offset >= offset:
                        out.append((record.offset, record.value))
                        got += 1
                offset = max(offset, batch.base_offset + batch.last_offset_delta + 1)
            if offset >= part["high_watermark"]:
                return start, out
            if not got and not records:
                raise CheckFailed(f"fetch {topic}-{partition}@{offset} returned nothing"
                                  f" below hw {part['high_watermark']}")


def wait_served(port: int, timeout: float = 30) -> float:
    """Seconds until a well-formed Metadata request is answered."""
    started = time.monotonic()
    last = None
    while time.monotonic() - started < timeout:
        try:
            with RawClient(port, timeout=5) as client:
                client.request("Metadata", 12, {"topics": [], "allow_auto_topic_creation": False,
                                                "include_topic_authorized_operations": False})
            return time.monotonic() - started
        except (OSError, AssertionError) as e:
            last = e
            time.sleep(0.1)
    raise CheckFailed(f"the broker did not answer a well-formed request within {timeout}s: {last}")


# ---------------------------------------------------------------------------------------------- the oracle


@dataclass
class Ledger:
    """What the broker acknowledged, per value, and what failed."""

    acked: dict[bytes, tuple[int, int]] = field(default_factory=dict)  # value -> (partition, offset)
    failed: dict[bytes, str] = field(default_factory=dict)
    sent: int = 0
    fatal: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_delivery(self, err, msg) -> None:
        with self.lock:
            if err is None:
                value = msg.value()
                previous = self.acked.get(value)
                if previous is not None and previous != (msg.partition(), msg.offset()):
                    self.fatal.append(f"{value!r} acknowledged twice: at {previous} and "
                                      f"{(msg.partition(), msg.offset())}")
                self.acked[value] = (msg.partition(), msg.offset())
            else:
                self.failed[msg.value()] = str(err)


@dataclass
class Verdict:
    acknowledged: int
    stored: int
    missing: int
    duplicates: int
    moved: int  # acknowledged offsets that hold another value now
    order_violations: int
    gaps: int
    failed_deliveries: int
    examples: list[str]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicates or self.moved or self.order_violations or self.gaps)

    def summary(self) -> str:
        return (f"acknowledged={self.acknowledged} stored={self.stored} missing={self.missing} "
                f"duplicates={self.duplicates} moved={self.moved} order_violations={self.order_violations} "
                f"gaps={self.gaps} failed_deliveries={self.failed_deliveries}")


def verify(port: int, topic: str, partitions: int, ledger: Ledger) -> Verdict:
    """Read every partition back and hold it against the ledger (the R1 checks)."""
    where: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
    at: dict[tuple[int, int], bytes] = {}
    gaps = order = 0
    examples: list[str] = []
    for p in range(partitions):
        start, records = read_partition(port, topic, p)
        expected = start
        last_seq: dict[str, int] = {}
        for offset, value in records:
            if offset != expected:
                gaps += 1
                examples.append(f"partition {p}: offset {offset} follows {expected - 1}")
            expected = offset + 1
            where[value].append((p, offset))
            at[(p, offset)] = value
            producer, _, seq = (value or b"").decode(errors="replace").partition(":")
            seq_no = int(seq.split("|")[0]) if seq.split("|")[0].isdigit() else -1
            if producer in last_seq and seq_no <= last_seq[producer]:
                order += 1
                if len(examples) < 20:
                    examples.append(f"partition {p} offset {offset}: {producer} seq {seq_no}"
                                    f" after {last_seq[producer]}")
            last_seq[producer] = max(seq_no, last_seq.get(producer, -1))
    duplicates = sum(len(v) - 1 for v in where.values() if len(v) > 1)
    for value, places in where.items():
        if len(places) > 1 and len(examples) < 20:
            examples.append(f"{value[:40]!r} stored {len(places)} times: {places[:4]}")
    missing = moved = 0
    with ledger.lock:
        acked = dict(ledger.acked)
        failed = len(ledger.failed)
    for value, (p, offset) in acked.items():
        if value not in where:
            missing += 1
            if len(examples) < 20:
                examples.append(f"acknowledged {value[:40]!r} at {p}@{offset} is missing")
        elif at.get((p, offset)) != value:
            moved += 1
            if len(examples) < 20:
                examples.append(f"offset {p}@{offset} acknowledged for {value[:40]!r}"
                                f" now holds {at.get((p, offset))!r:.60}")
    return Verdict(len(acked), len(at), missing, duplicates, moved, order, gaps, failed, examples)


# ---------------------------------------------------------------------------------------------- producers


def idempotent_producer(bootstrap: str, **overrides):
    from confluent_kafka import Producer

    conf = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 300000,
        "request.timeout.ms": 10000,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
        "retry.backoff.ms": 50,
        "retry.backoff.max.ms": 500,
        "topic.metadata.refresh.interval.ms": 2000,
        "broker.address.family": "v4",
        "log_level": 2,
    }
    conf.update(overrides)
    debug_file = os.environ.get("TORTURE_RDKAFKA_DEBUG")  # e.g. /tmp/rdkafka.log: librdkafka's own log
    if debug_file:
        import logging

        logger = logging.getLogger("rdkafka")
        if not logger.handlers:
            handler = logging.FileHandler(debug_file)
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.DEBUG)
        conf.update({"debug": "eos,broker,topic,msg,protocol", "logger": logger, "log_level": 7})
    return Producer(conf)


class ProduceLoad:
    """Idempotent librdkafka producers writing `<name>:<seq>` round-robin over the partitions, with at
    most `max_queued` messages unacknowledged. Call pump() often from one thread."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, ledger: Ledger, producers: int = 2,
                 max_queued: int = 2000, pad: int = 0, rate: float | None = None, **overrides):
        self.rate, self.started = rate, time.monotonic()
        self.topic, self.partitions, self.ledger, self.max_queued, self.pad = topic, partitions, ledger, max_queued, pad
        tag = f"{os.getpid()}{random.randrange(1 << 20):05x}"
        self.producers = [(f"P{tag}{i}", idempotent_producer(bootstrap, **overrides)) for i in range(producers)]
        self.seq = [0] * producers
        self.fatal: list[str] = []
        self.paused = False

    def pump(self, budget: float = 0.02) -> None:
        for i, (name, producer) in enumerate(self.producers):
            if not self.paused:
                room = self.max_queued - len(producer)
                if self.rate is not None:
                    allowed = int(self.rate * (time.monotonic() - self.started) / len(self.producers))
                    room = min(room, allowed - self.seq[i])
                for _ in range(max(0, min(room, 500))):
                    seq = self.seq[i]
                    value = f"{name}:{seq}".encode()
                    if self.pad:
                        value += b"|" + b"x" * self.pad
                    try:
                        producer.produce(self.topic, value=value, partition=seq % self.partitions,
                                         on_delivery=self.ledger.on_delivery)
                    except BufferError:
                        break
                    self.seq[i] += 1
                    self.ledger.sent += 1
            producer.poll(budget / len(self.producers))

    def check_fatal(self) -> None:
        from confluent_kafka import KafkaException

        for name, producer in self.producers:
            try:
                producer.poll(0)
            except KafkaException as e:  # fatal idempotence errors surface as exceptions from poll in some versions
                self.fatal.append(f"{name}: {e}")

    def flush(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        for _, producer in self.producers:
            producer.flush(max(0.1, deadline - time.monotonic()))
        return sum(len(p) for _, p in self.producers)

    def close(self) -> None:
        for _, producer in self.producers:
            producer.purge()
            producer.flush(0)


def _errors_watch(ledger: Ledger):
    def on_error(err) -> None:
        if err.fatal():
            ledger.fatal.append(f"fatal producer error: {err}")
    return on_error


# ---------------------------------------------------------------------------------------------- R1 / R4


@dataclass
class FaultReport:
    name: str
    seconds: float
    faults: int
    verdict: Verdict | None = None
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        v = self.verdict.summary() if self.verdict else "no verdict"
        return f"{self.name}: {self.faults} fault(s) in {self.seconds:.0f}s; {v}" + (
            f"; {'; '.join(self.notes)}" if self.notes else "")


def _finish(report: FaultReport, broker: Broker, load: ProduceLoad, ledger: Ledger, topic: str,
            partitions: int, flush_timeout: float = 120) -> FaultReport:
    left = load.flush(flush_timeout)
    if left:
        report.notes.append(f"{left} message(s) still unacknowledged after {flush_timeout}s")
    # One last crash after the final acknowledgements: they must survive it too.
    broker.restart(clean=False)
    report.faults += 1
    wait_served(broker.port)
    report.verdict = verify(broker.port, topic, partitions, ledger)
    if ledger.fatal:
        report.notes.extend(ledger.fatal[:5])
    return report


def run_kill_test(workdir: str, seconds: float, interval: tuple[float, float] = (1, 10), partitions: int = 8,
                  seed: int | None = None) -> FaultReport:
    """R1: kill -9 the broker every interval seconds during acks=all idempotent produce; restart it on the
    same data dir each time; then read everything back."""
    rng = random.Random(seed)
    topic = "r1"
    broker = Broker(os.path.join(workdir, "r1-data"))
    ledger = Ledger()
    load = None
    report = FaultReport("R1 kill -9", 0, 0)
    started = time.monotonic()
    try:
        broker.start()
        assert create_topic(broker.port, topic, partitions) == 0
        load = ProduceLoad(broker.bootstrap, topic, partitions, ledger, error_cb=_errors_watch(ledger))
        next_kill = time.monotonic() + rng.uniform(*interval)
        end = started + seconds
        while time.monotonic() < end:
            load.pump()
            if time.monotonic() >= next_kill:
                broker.kill()
                report.faults += 1
                broker.start()
                next_kill = time.monotonic() + rng.uniform(*interval)
                log(f"R1: kill #{report.faults}, {len(ledger.acked)} acknowledged so far")
        report.seconds = time.monotonic() - started
        return _finish(report, broker, load, ledger, topic, partitions)
    finally:
        if load is not None:
            load.close()
        broker.kill()


def run_stop_test(workdir: str, seconds: float, stop_for: float = 6.0, partitions: int = 8,
                  seed: int | None = None) -> FaultReport:
    """R4: SIGSTOP the broker for longer than the clients' request and socket timeouts, then SIGCONT."""
    rng = random.Random(seed)
    topic = "r4"
    broker = Broker(os.path.join(workdir, "r4-data"))
    ledger = Ledger()
    load = None
    report = FaultReport("R4 SIGSTOP/SIGCONT", 0, 0)
    started = time.monotonic()
    try:
        broker.start()
        assert create_topic(broker.port, topic, partitions) == 0
        # Timeouts well below the stop: librdkafka times requests out, reconnects and retries while the
        # broker still holds the originals in its socket buffers.
        load = ProduceLoad(broker.bootstrap, topic, partitions, ledger, error_cb=_errors_watch(ledger),
                           **{"request.timeout.ms": 2000, "socket.timeout.ms": 2000,
                              "metadata.request.timeout.ms": 2000})
        end = started + seconds
        next_stop = time.monotonic() + rng.uniform(1, 3)
        while time.monotonic() < end:
            load.pump()
            if time.monotonic() >= next_stop:
                broker.sigstop()
                report.faults += 1
                until = time.monotonic() + stop_for
                while time.monotonic() < until:
                    load.pump()
                broker.sigcont()
                log(f"R4: stop #{report.faults} ({stop_for:.0f}s), {len(ledger.acked)} acknowledged so far")
                next_stop = time.monotonic() + rng.uniform(2, 5)
        report.seconds = time.monotonic() - started
        return _finish(report, broker, load, ledger, topic, partitions)
    finally:
        if load is not None:
            load.close()
        broker.kill()


# ---------------------------------------------------------------------------------------------- R5


def can_mount_tmpfs(workdir: str) -> bool:
    if os.geteuid() != 0:
        return False
    probe = os.path.join(workdir, "mount-probe")
    os.makedirs(probe, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", probe], capture_output=True)
    return ok


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"mount {' '.join(args)}: {result.stderr.strip()}")


def _used_kb(path: str) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize // 1024


class _Prober:
    """Sends single non-idempotent acks=all batches over a raw socket and records the error codes; an
    acknowledged probe goes into the ledger like any other message."""

    def __init__(self, broker: Broker, topic: str, partitions: int, ledger: Ledger):
        self.broker, self.topic, self.partitions, self.ledger = broker, topic, partitions, ledger
        self.n = 0
        self.codes: dict[int, int] = defaultdict(int)

    def probe(self, pad: int = 0) -> int:
        from kafkalite.protocol.record_batch import build_batch

        value = f"probe:{self.n}".encode() + (b"|" + b"p" * pad if pad else b"")
        partition = self.n % self.partitions
        self.n += 1
        batch = build_batch([(None, value)], timestamps=int(time.time() * 1000))
        try:
            resp = produce_raw(self.broker.port, self.topic, partition, batch, timeout=15)
        except (OSError, AssertionError):
            self.codes[-100] += 1
            return -100
        code = resp["error_code"]
        self.codes[code] += 1
        if code == 0:
            with self.ledger.lock:
                self.ledger.acked[value] = (partition, resp["base_offset"])
        return code

    def until(self, want: int, timeout: float, load: ProduceLoad, pad: int = 0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.probe(pad) == want:
                return True
            end = time.monotonic() + 0.2
            while time.monotonic() < end:
                load.pump()
        return False


def run_storage_test(workdir: str, hold: float = 3.0, partitions: int = 8) -> FaultReport:
    """R5: a full disk (a small tmpfs, really full), EIO and EROFS (the file seam, switched from outside),
    and a read-only data dir (a read-only remount of the tmpfs, at a restart). Each time: produce fails
    with KAFKA_STORAGE_ERROR (56), nothing unstored is acknowledged; after the fault clears and a
    restart, produce works again and, at the end, the R1 checks hold."""
    topic = "r5"
    report = FaultReport("R5 storage faults", 0, 0)
    mnt = os.path.join(workdir, "r5-mnt")
    os.makedirs(mnt, exist_ok=True)
    mounted = can_mount_tmpfs(workdir)
    if mounted:
        _mount("-t", "tmpfs", "-o", "size=256m", "tmpfs", mnt)
    else:
        report.notes.append("no tmpfs mount here: full disk simulated with the file seam (ENOSPC)")
    fault_file = os.path.join(workdir, "r5.fault")
    broker = Broker(os.path.join(mnt, "data"), "--set", "offsets.topic.num.partitions=4", fault_file=fault_file)
    ledger = Ledger()
    load = None
    started = time.monotonic()

    def pump_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            load.pump()

    def set_fault(spec: str | None) -> None:
        if spec is None:
            if os.path.exists(fault_file):
                os.remove(fault_file)
        else:
            with open(fault_file + ".tmp", "w") as f:
                f.write(spec)
            os.replace(fault_file + ".tmp", fault_file)
        time.sleep(0.05)  # the broker looks at the switch every 20 ms

    try:
        set_fault(None)
        broker.start()
        assert create_topic(broker.port, topic, partitions) == 0
        load = ProduceLoad(broker.bootstrap, topic, partitions, ledger, pad=300, max_queued=500,
                           error_cb=_errors_watch(ledger))
        prober = _Prober(broker, topic, partitions, ledger)
        pump_for(2)
        faults = [("ENOSPC (disk full)", "full"), ("EIO", "EIO write,fsync,truncate"), ("EROFS", "EROFS *")]
        for name, spec in faults:
            if spec == "full":
                if mounted:
                    size_kb = _used_kb(mnt) + 256
                    _mount("-o", f"remount,size={size_kb}k", mnt)
                else:
                    set_fault("ENOSPC write,open,truncate")
            else:
                set_fault(spec)
            report.faults += 1
            acked_before = len(ledger.acked)
            # Large probes fill the disk by themselves, whatever the producers manage meanwhile.
            if not prober.until(56, 30, load, pad=32 * 1024 if spec == "full" else 0):
                raise CheckFailed(f"R5 {name}: produce never failed with KAFKA_STORAGE_ERROR (56); "
                                  f"probe codes {dict(prober.codes)}\n{broker.tail()}")
            pump_for(hold)
            wait_served(broker.port)  # a storage fault does not stop the broker serving
            log(f"R5: {name}: produce fails with 56; {len(ledger.acked) - acked_before} acknowledged meanwhile")
            # Nothing unstored acknowledged: every acknowledgement so far is readable now, before any restart.
            verdict = verify(broker.port, topic, partitions, ledger)
            if not verdict.ok:
                raise CheckFailed(f"R5 {name}, during the fault: {verdict.summary()}\n" + "\n".join(verdict.examples))
            # Clear the fault, restart (kill -9), produce must work again.
            if spec == "full" and mounted:
                _mount("-o", "remount,size=256m", mnt)
            set_fault(None)
            broker.restart(clean=False)
            if not prober.until(0, 30, load):
                raise CheckFailed(f"R5 {name}: produce did not recover after the fault cleared and a restart; "
                                  f"probe codes {dict(prober.codes)}\n{broker.tail()}")
            pump_for(2)
        if mounted:
            # A read-only data dir at start-up: the broker must not pretend to work, nor harm the data.
            broker.kill()
            report.faults += 1
            _mount("-o", "remount,ro", mnt)
            try:
                broker.start(timeout=20)
                code = prober.probe()
                report.notes.append(f"read-only data dir: broker started, produce answered {code}")
                if code != 56:
                    raise CheckFailed(f"R5 read-only data dir: produce answered {code}, not 56")
                broker.kill()
            except RuntimeError:
                report.notes.append("read-only data dir: broker refused to start")
            _mount("-o", "remount,rw", mnt)
            broker.start()
            pump_for(2)
        report.seconds = time.monotonic() - started
        report.notes.append(f"probe codes {dict(prober.codes)}")
        return _finish(report, broker, load, ledger, topic, partitions, flush_timeout=60)
    finally:
        if load is not None:
            load.close()
        broker.kill()
        set_fault(None)
        if mounted:
            subprocess.run(["umount", mnt], capture_output=True)


# ---------------------------------------------------------------------------------------------- R6

CONSUMER = os.path.join(HERE, "group_consumer.py")


def committed_offsets(port: int, group: str, topic: str) -> dict[int, int]:
    with RawClient(port, timeout=15) as client:
        response = client.request("OffsetFetch", 7, {"group_id": group, "topics": None, "require_stable": False})
    if response["error_code"]:
        raise CheckFailed(f"OffsetFetch failed with {response['error_code']}")
    return {p["partition_index"]: p["committed_offset"] for t in response["topics"] if t["name"] == topic
            for p in t["partitions"] if p["committed_offset"] >= 0}


def high_watermarks(port: int, topic: str, partitions: int) -> dict[int, int]:
    with RawClient(port, timeout=15) as client:
        response = client.request("ListOffsets", 7, {"replica_id": -1, "isolation_level": 0, "topics": [{
            "name": topic, "partitions": [{"partition_index": p, "current_leader_epoch": -1, "timestamp": -1}
                                          for p in range(partitions)]}]})
    return {p["partition_index"]: p["offset"] for p in response["topics"][0]["partitions"]}


class Member:
    def __init__(self, bootstrap: str, group: str, topic: str, path: str):
        self.path = path
        self.proc = subprocess.Popen([sys.executable, CONSUMER, bootstrap, group, topic, path],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise CheckFailed(f"consumer {self.path} did not close within {timeout}s")
        return self.proc.returncode


def consumed_offsets(paths: list[str]) -> dict[int, set[int]]:
    consumed: dict[int, set[int]] = defaultdict(set)
    for path in paths:
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[0] == "c":
                    consumed[int(parts[1])].add(int(parts[2]))
    return consumed


class CommitWatch(threading.Thread):
    """Polls the group's committed offsets; any partition's offset going down is a violation."""

    def __init__(self, port: int, group: str, topic: str):
        super().__init__(daemon=True)
        self.port, self.group, self.topic = port, group, topic
        self.last: dict[int, int] = {}
        self.violations: list[str] = []
        self.polls = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.25):
            try:
                now = committed_offsets(self.port, self.group, self.topic)
            except (OSError, AssertionError, CheckFailed):
                continue
            self.polls += 1
            for p, offset in now.items():
                if offset < self.last.get(p, -1):
                    self.violations.append(f"partition {p}: committed {self.last[p]} then {offset}")
                self.last[p] = max(offset, self.last.get(p, -1))

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)


def check_committed_le_consumed(port: int, group: str, topic: str, paths: list[str], when: str) -> int:
    """Every offset below each partition's committed offset was consumed by some member."""
    committed = committed_offsets(port, group, topic)
    consumed = consumed_offsets(paths)
    for p, offset in committed.items():
        missing = [o for o in range(offset) if o not in consumed.get(p, ())]
        if missing:
            raise CheckFailed(f"R6 {when}: partition {p} committed {offset} but offsets {missing[:5]} "
                              f"({len(missing)}) were never consumed")
    return sum(committed.values())


def run_group_test(workdir: str, seconds: float = 20, partitions: int = 8, members: int = 3) -> FaultReport:
    """R6: kill -9 one group member, then all of them, during produce; committed <= consumed after each
    kill, commits never go backwards, and after a clean close committed == consumed == the log end."""
    topic, group = "r6", "r6-group"
    report = FaultReport("R6 consumer kills", 0, 0)
    broker = Broker(os.path.join(workdir, "r6-data"), "--set", "offsets.topic.num.partitions=4")
    ledger = Ledger()
    load = watch = None
    alive: list[Member] = []
    paths: list[str] = []
    started = time.monotonic()

    def spawn() -> Member:
        path = os.path.join(workdir, f"r6-member-{len(paths)}.log")
        paths.append(path)
        member = Member(broker.bootstrap, group, topic, path)
        alive.append(member)
        return member

    def pump_for(seconds_: float) -> None:
        end = time.monotonic() + seconds_
        while time.monotonic() < end:
            load.pump()

    try:
        broker.start()
        assert create_topic(broker.port, topic, partitions) == 0
        load = ProduceLoad(broker.bootstrap, topic, partitions, ledger, rate=400, max_queued=200)
        watch = CommitWatch(broker.port, group, topic)
        watch.start()
        for _ in range(members):
            spawn()
        phase = seconds / 3
        pump_for(phase)
        victim = alive.pop(0)
        victim.kill()
        report.faults += 1
        total = check_committed_le_consumed(broker.port, group, topic, paths, "after killing one member")
        log(f"R6: killed one member; committed total {total}")
        pump_for(phase)
        for member in alive:
            member.kill()
            report.faults += 1
        alive.clear()
        total = check_committed_le_consumed(broker.port, group, topic, paths, "after killing all members")
        log(f"R6: killed all members; committed total {total}")
        for _ in range(2):
            spawn()
        pump_for(phase)
        left = load.flush(60)
        if left:
            raise CheckFailed(f"R6: {left} messages were never acknowledged")
        ends = high_watermarks(broker.port, topic, partitions)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            consumed = consumed_offsets(paths)
            if all(ends[p] == 0 or max(consumed.get(p, {-1})) >= ends[p] - 1 for p in range(partitions)):
                break
            time.sleep(0.3)
        else:
            raise CheckFailed(f"R6: the new members did not catch up to the log end {ends}")
        for member in alive:
            if member.close() != 0:
                raise CheckFailed("R6: a member failed to close cleanly")
        alive.clear()
        check_committed_le_consumed(broker.port, group, topic, paths, "after a clean close")
        committed = committed_offsets(broker.port, group, topic)
        consumed = consumed_offsets(paths)
        for p in range(partitions):
            want = max(consumed.get(p, {-1})) + 1
            if committed.get(p, 0) != want or want != ends[p]:
                raise CheckFailed(f"R6 after a clean close: partition {p} committed {committed.get(p)}, "
                                  f"consumed up to {want}, log end {ends[p]}")
        watch.stop()
        if watch.violations:
            raise CheckFailed("R6: commits went backwards: " + "; ".join(watch.violations[:5]))
        report.seconds = time.monotonic() - started
        report.notes.append(f"{sum(ends.values())} messages, {watch.polls} commit polls, "
                            f"{sum(len(v) for v in consumed.values())} distinct offsets consumed")
        # The committed offsets survive a broker crash too.
        broker.restart(clean=False)
        wait_served(broker.port)
        after = committed_offsets(broker.port, group, topic)
        if after != committed:
            raise CheckFailed(f"R6: committed offsets changed across a broker kill: {committed} -> {after}")
        report.verdict = verify(broker.port, topic, partitions, ledger)
        return report
    finally:
        if watch is not None:
            watch.stop()
        for member in alive:
            member.kill()
        if load is not None:
            load.close()
        broker.kill()


# ---------------------------------------------------------------------------------------------- the fuzzer

import socket  # noqa: E402
import struct  # noqa: E402

FUZZ_TOPIC = "fuzz-victim"
MEMORY_BOUND_KB = 400 * 1024  # the broker's peak resident set may never pass this (it idles near 60 MiB)


def _now_ms() -> int:
    return int(time.time() * 1000)


def well_formed_frames() -> list[tuple[str, bytes]]:
    """One well-formed request frame per (API, version) kafkalite serves, every field set (from the message
    declarations), Produce carrying a real record batch; plus the golden corpus when there is one."""
    sys.path.insert(0, os.path.join(TESTS, "protocol"))
    from schema_values import API_VERSIONS, full_value

    from kafkalite.protocol import wire
    from kafkalite.protocol.record_batch import build_batch

    frames = []
    for api, version in API_VERSIONS:
        body = full_value(api.request, version, api.is_flexible(version))
        if api.name == "Produce":
            body["acks"] = 1
            for t in body["topic_data"]:
                t["name"] = "fuzz-produce"
                for p in t["partition_data"]:
                    p["index"] = 0
                    p["records"] = build_batch([(b"k", b"fuzz")], timestamps=_now_ms())
        frames.append((f"{api.name}-v{version}", wire.join(wire.encode_request(api.key, version, 7, "fuzz", body))))
    golden = os.path.join(TESTS, "golden")
    if os.path.isdir(golden):
        for name in sorted(os.listdir(golden)):
            if "_request_" not in name:
                continue
            with open(os.path.join(golden, name), "rb") as f:
                data = f.read()
            if len(data) < 4 or struct.unpack_from(">i", data)[0] != len(data) - 4:
                data = struct.pack(">i", len(data)) + data  # stored without its size prefix
            frames.append((f"golden/{name}", data))
    return frames


def table_cases() -> list[tuple[str, bytes]]:
    """RELIABILITY.md's malformed-input table, one frame (or byte string) per row and variant."""
    from kafkalite.protocol import wire
    from kafkalite.protocol.messages import APIS_BY_NAME
    from kafkalite.protocol.record_batch import CONTROL_BIT, CRC_START, build_batch, crc32c

    def req(api: str, version: int, body: dict) -> bytes:
        return wire.join(wire.encode_request(APIS_BY_NAME[api].key, version, 9, "table", body))

    def produce(batch, acks=-1, topic=FUZZ_TOPIC) -> bytes:
        return req("Produce", 9, {"transactional_id": None, "acks": acks, "timeout_ms": 5000,
                                  "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": batch}]}]})

    good = build_batch([(None, b"x")], timestamps=_now_ms())
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0xFF
    bad_count = bytearray(good)
    struct.pack_into(">i", bad_count, 57, 3)
    struct.pack_into(">I", bad_count, 17, crc32c(bytes(bad_count[CRC_START:])))
    meta4 = req("Metadata", 4, {"topics": [], "allow_auto_topic_creation": False})
    cases = [
        ("negative frame length", struct.pack(">i", -5)),
        ("frame length -2^31", struct.pack(">i", -(1 << 31))),
        ("frame above socket.request.max.bytes", struct.pack(">i", 104857601) + b"\0" * 100),
        ("frame length 2^31-1", struct.pack(">i", (1 << 31) - 1) + b"\0" * 100),
        ("unknown API key", struct.pack(">ihhih", 8, 999, 0, 1, -1)),
        ("negative API key", struct.pack(">ihhih", 8, -1, 0, 1, -1)),
        ("unsupported Produce version", struct.pack(">ihhih", 10, 0, 2, 1, -1)),
        ("unsupported Fetch version", struct.pack(">ihhih", 10, 1, 99, 1, -1)),
        ("ApiVersions v99", struct.pack(">ihhih", 10, 18, 99, 42, -1)),
        ("ApiVersions v-1", struct.pack(">ihhih", 10, 18, -1, 42, -1)),
        ("truncated body", struct.pack(">ihhih", 10, 3, 12, 1, -1)),
        ("header only", struct.pack(">ihh", 4, 3, 12)),
        ("trailing garbage", struct.pack(">i", len(meta4) - 4 + 2) + meta4[4:] + b"\0\1"),
        ("huge array count v1", struct.pack(">ihhihi", 14, 3, 1, 7, -1, 0x7FFFFFFF)),
        ("huge compact array count", struct.pack(">ihhihb", 15, 3, 12, 1, -1, 0) + b"\xff\xff\xff\xff\x07"),
        ("negative array count", struct.pack(">ihhihi", 14, 3, 1, 7, -1, -7)),
        ("huge string length", struct.pack(">ihhihh", 12, 3, 1, 7, 0x7FFF, 1)),
        ("negative string length", struct.pack(">ihhihh", 12, 3, 1, 7, -5, 1)),
        ("client id longer than the frame", struct.pack(">ihhih", 10, 18, 0, 1, 3000)),
        ("huge compact string length",
         struct.pack(">ihhih", 20, 18, 3, 1, -1) + b"\0" + b"\xff\xff\xff\xff\x0f" + b"ab"),
        ("huge tag count", struct.pack(">ihhih", 15, 18, 3, 1, -1) + b"\xff\xff\xff\xff\x07"),
        ("tag with huge size", struct.pack(">ihhih", 16, 18, 3, 1, -1) + b"\x01\x00\xff\xff\xff\xff\x07"),
        ("duplicate tags", struct.pack(">ihhih", 16, 18, 3, 1, -1) + b"\x02\x00\x01x\x00\x01x" + b"\x01\x01\x00"),
        ("unordered tags", struct.pack(">ihhih", 16, 18, 3, 1, -1) + b"\x02\x05\x01x\x01\x01x" + b"\x01\x01\x00"),
        ("batch CRC mismatch", produce(bytes(bad_crc))),
        ("batch shorter than 61 bytes", produce(good[:40])),
        ("batch larger than max.message.bytes", produce(build_batch([(None, b"x" * 1_100_000)], timestamps=_now_ms()))),
        ("baseOffset not 0", produce(struct.pack(">q", 5) + good[8:])),
        ("count not lastOffsetDelta + 1", produce(bytes(bad_count))),
        ("batchLength huge", produce(good[:8] + struct.pack(">i", 0x7FFFFFF0) + good[12:])),
        ("batchLength negative", produce(good[:8] + struct.pack(">i", -100) + good[12:])),
        ("control batch", produce(build_batch([(b"\0\0\0\0", b"")], timestamps=_now_ms(), attributes=CONTROL_BIT))),
        ("timestamp far in the past", produce(build_batch([(None, b"x")], timestamps=1))),
        ("acks = 2", produce(good, acks=2)),
        ("acks = -32768", produce(good, acks=-32768)),
        ("records null", produce(None)),
        ("topic name too long", produce(good, topic="t" * 300)),
        ("topic name with a slash", produce(good, topic="../../etc")),
    ]
    for name in ["", ".", "..", "a" * 250, "bad/name", "spaces here", "../x"]:
        cases.append((f"CreateTopics {name[:12]!r}", req("CreateTopics", 7, {"topics": [{
            "name": name, "num_partitions": 1, "replication_factor": 1, "assignments": [], "configs": []}],
            "timeout_ms": 5000})))
    cases.append(("CreateTopics 2^31-1 partitions", req("CreateTopics", 7, {"topics": [{
        "name": "fuzz-huge", "num_partitions": 0x7FFFFFFF, "replication_factor": 1, "assignments": [],
        "configs": []}], "timeout_ms": 5000})))
    cases.append(("CreatePartitions to 2^31-1", req("CreatePartitions", 3, {"topics": [{
        "name": FUZZ_TOPIC, "count": 0x7FFFFFFF, "assignments": None}], "timeout_ms": 5000,
        "validate_only": False})))
    return cases


_EXTREMES4 = [0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0, 0x00FFFFFF, 0x40000000]
_EXTREMES2 = [0x7FFF, 0x8000, 0xFFFF, 0]


def mutate(frame: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One mutation of a whole frame (size prefix included)."""
    body = bytearray(frame[4:])
    kind = rng.choice(["flip", "flip", "truncate", "extreme4", "extreme2", "varint", "garbage", "prefix",
                       "splice", "header"])
    if kind == "flip" and body:
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(body))
            body[i] ^= 1 << rng.randrange(8)
    elif kind == "truncate" and body:
        del body[rng.randrange(len(body)):]
    elif kind == "extreme4" and len(body) >= 4:
        i = rng.randrange(len(body) - 3)
        struct.pack_into(">I", body, i, rng.choice(_EXTREMES4))
    elif kind == "extreme2" and len(body) >= 2:
        i = rng.randrange(len(body) - 1)
        struct.pack_into(">H", body, i, rng.choice(_EXTREMES2))
    elif kind == "varint" and body:
        i = rng.randrange(len(body))
        body[i:i + 1] = rng.choice([b"\xff\xff\xff\xff\x0f", b"\xff\xff\xff\xff\x07", b"\x80" * 10, b"\xfe\xff\x03"])
    elif kind == "garbage":
        body += rng.randbytes(rng.randint(1, 64))
    elif kind == "prefix":  # the size prefix alone is wrong
        size = rng.choice([len(body) + rng.randint(1, 100), max(0, len(body) - rng.randint(1, 20)),
                           rng.choice([-1, -(1 << 31), (1 << 31) - 1, 104857600, 104857601])])
        return kind, struct.pack(">i", size) + bytes(body)
    elif kind == "splice" and len(body) > 8:
        i, j = sorted(rng.sample(range(len(body)), 2))
        body[i:j] = body[i:j] * rng.randint(2, 4)
    elif kind == "header" and len(body) >= 4:
        struct.pack_into(">h", body, rng.choice([0, 2]), rng.choice([-1, 0, 1, 18, 99, 999, 0x7FFF, -32768]))
    return kind, struct.pack(">i", len(body)) + bytes(body)


def random_frame(rng: random.Random) -> bytes:
    n = rng.choice([0, 1, 2, 4, 8, rng.randint(0, 64), rng.randint(0, 2000)])
    body = bytearray(rng.randbytes(n))
    if n >= 4 and rng.random() < 0.7:  # a plausible header, random after it
        struct.pack_into(">hh", body, 0, rng.randrange(0, 70), rng.randrange(-1, 16))
    return struct.pack(">i", len(body)) + bytes(body)


@dataclass
class FuzzReport:
    cases: int = 0
    closed: int = 0
    answered: int = 0
    by_kind: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    peak_rss_kb: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0

    def line(self) -> str:
        return (f"fuzz: {self.cases} cases in {self.seconds:.0f}s ({self.closed} closed by the broker, "
                f"{self.answered} answered); peak RSS {self.peak_rss_kb // 1024} MiB; "
                f"failures {len(self.failures)}")


def send_case(port: int, data: bytes, wait_answer: bool, timeout: float = 5.0) -> tuple[bool, bool]:
    """Send one case on a new connection. (answered, closed_by_broker). The client half-closes after
    sending, so a frame the broker is still waiting bytes for ends too."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    answered = False
    try:
        try:
            sock.sendall(data)
        except OSError:
            return False, True  # the broker closed while we were sending: fine
        if wait_answer:
            sock.settimeout(0.05)
            try:
                chunk = sock.recv(65536)
                if chunk:
                    answered = True
                else:
                    return answered, True
            except socket.timeout:
                pass
            except OSError:
                return answered, True
            sock.settimeout(timeout)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            return answered, True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except OSError:
                return answered, True
            if not chunk:
                return answered, True
            answered = True
        raise CheckFailed(f"the broker neither answered nor closed within {timeout}s after end of input")
    finally:
        sock.close()


class Probe:
    """A well-formed client that stays connected and must be served after every case."""

    def __init__(self, port: int):
        self.port = port
        self.client = RawClient(port, timeout=10)

    def check(self) -> None:
        try:
            response = self.client.request("ApiVersions", 3, {"client_software_name": "probe",
                                                              "client_software_version": "1"})
        except (OSError, AssertionError) as e:
            raise CheckFailed(f"the well-formed probe connection was not served: {e!r}")
        if response["error_code"] != 0:
            raise CheckFailed(f"probe ApiVersions answered error {response['error_code']}")

    def close(self) -> None:
        self.client.close()


def seed_victim(port: int, partitions: int = 2, records: int = 200) -> dict[int, list[tuple[int, bytes]]]:
    from kafkalite.protocol.record_batch import build_batch

    assert create_topic(port, FUZZ_TOPIC, partitions, {"message.timestamp.difference.max.ms": "3600000"}) == 0
    for p in range(partitions):
        for i in range(0, records, 50):
            batch = build_batch([(b"k", f"victim:{p}:{j}".encode()) for j in range(i, i + 50)], timestamps=_now_ms())
            assert produce_raw(port, FUZZ_TOPIC, p, batch)["error_code"] == 0
    return {p: read_partition(port, FUZZ_TOPIC, p)[1] for p in range(partitions)}


def check_victim(port: int, before: dict) -> None:
    for p, records in before.items():
        now = read_partition(port, FUZZ_TOPIC, p)[1]
        if now[: len(records)] != records:
            raise CheckFailed(f"data written before the fuzzing changed in partition {p}")


def run_fuzz(workdir: str, seconds: float, seed: int = 0, max_cases: int | None = None) -> FuzzReport:
    """Random frames, frames mutated from well-formed ones (and the golden corpus), and every malformed case
    of RELIABILITY.md, each on its own connection. After every case a well-formed client is served and the
    broker's peak memory stays under MEMORY_BOUND_KB; the data written before is checked every 250 cases
    and at the end."""
    rng = random.Random(seed)
    report = FuzzReport()
    broker = Broker(os.path.join(workdir, "fuzz-data"), "--set", "offsets.topic.num.partitions=4")
    probe = None
    started = time.monotonic()
    try:
        broker.start()
        before = seed_victim(broker.port)
        probe = Probe(broker.port)
        base = well_formed_frames()
        table = table_cases()
        deadline = started + seconds
        queue = [(f"table: {name}", data) for name, data in table] + [(f"well-formed {n}", d) for n, d in base]
        while time.monotonic() < deadline and (max_cases is None or report.cases < max_cases):
            if queue:
                name, data = queue.pop(0)
                kind = name.split(":")[0].split(" ")[0]
            elif rng.random() < 0.15:
                name, data, kind = "random", random_frame(rng), "random"
            else:
                origin, frame = rng.choice(base)
                kind, data = mutate(frame, rng)
                name = f"{kind} of {origin}"
            report.cases += 1
            report.by_kind[kind] += 1
            try:
                answered, closed = send_case(broker.port, data, wait_answer=rng.random() < 0.25)
            except (CheckFailed, OSError) as e:
                raise CheckFailed(f"case {report.cases} ({name}): {e}; frame {data[:64].hex()}")
            report.answered += answered
            report.closed += closed
            if not broker.alive():
                raise CheckFailed(f"the broker died on case {report.cases} ({name}), frame {data[:64].hex()}:\n"
                                  f"{broker.tail()}")
            try:
                probe.check()
            except CheckFailed as e:
                raise CheckFailed(f"after case {report.cases} ({name}), frame {data[:64].hex()}: {e}")
            rss, hwm = broker.memory_kb()
            report.peak_rss_kb = max(report.peak_rss_kb, hwm)
            if hwm > MEMORY_BOUND_KB:
                raise CheckFailed(f"the broker's peak memory reached {hwm // 1024} MiB after case {report.cases} "
                                  f"({name}), frame {data[:64].hex()}")
            if report.cases % 250 == 0:
                check_victim(broker.port, before)
        check_victim(broker.port, before)
        report.seconds = time.monotonic() - started
        return report
    finally:
        if probe is not None:
            probe.close()
        broker.kill()


def run_slow_reader(workdir: str, seconds: float = 8, fill_mb: int = 16) -> dict:
    """A client pipelines large Fetch requests and never reads a response: the broker's memory must stay
    bounded (it stops reading that connection), and other clients are still served."""
    from kafkalite.protocol.record_batch import build_batch

    broker = Broker(os.path.join(workdir, "slow-data"), "--set", "offsets.topic.num.partitions=4")
    socks = []
    try:
        broker.start()
        assert create_topic(broker.port, "big", 1) == 0
        payload = os.urandom(1000)
        for _ in range(fill_mb):
            batch = build_batch([(None, payload) for _ in range(1000)], timestamps=_now_ms())
            assert produce_raw(broker.port, "big", 0, batch, acks=1)["error_code"] == 0
        base_rss = broker.memory_kb()[0]
        with RawClient(broker.port) as c:
            frame = c.encode("Fetch", 12, {
                "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 64 << 20, "isolation_level": 0,
                "topics": [{"topic": "big", "partitions": [{"partition": 0, "fetch_offset": 0,
                                                            "partition_max_bytes": 64 << 20}]}]})
        sent = 0
        for _ in range(2):  # two slow readers
            sock = socket.create_connection(("127.0.0.1", broker.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            socks.append(sock)
        data = frame * 2000
        positions = [0] * len(socks)
        peak = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for i, sock in enumerate(socks):
                try:
                    positions[i] += sock.send(data[positions[i]:positions[i] + 65536])
                except (BlockingIOError, InterruptedError):
                    pass
            time.sleep(0.02)
            peak = max(peak, broker.memory_kb()[0])
            if peak - base_rss > 512 * 1024:
                break
        sent = sum(positions) // len(frame)
        served = wait_served(broker.port, timeout=10)
        rss, hwm = broker.memory_kb()
        result = {"requests_sent": sent, "base_rss_mb": base_rss // 1024, "peak_rss_mb": max(peak, rss) // 1024,
                  "hwm_mb": hwm // 1024, "other_client_served_in_s": round(served, 3)}
        if peak - base_rss > 256 * 1024:
            raise CheckFailed(f"a client that never reads grew the broker by {(peak - base_rss) // 1024} MiB: {result}")
        return result
    finally:
        for sock in socks:
            sock.close()
        broker.kill()


def run_idle_connections(workdir: str, count: int = 1000) -> dict:
    """`count` idle connections (and the same number more that sent half a frame) must not stop a
    well-formed client being served."""
    broker = Broker(os.path.join(workdir, "idle-data"), "--set", "offsets.topic.num.partitions=4")
    socks = []
    try:
        broker.start()
        started = time.monotonic()
        for i in range(count):
            sock = socket.create_connection(("127.0.0.1", broker.port), timeout=10)
            if i % 2:
                sock.sendall(struct.pack(">i", 1000) + b"\0\3")  # half a frame, then silence
            socks.append(sock)
        opened = time.monotonic() - started
        served = wait_served(broker.port, timeout=10)
        with RawClient(broker.port):  # and a full produce/fetch round trip
            from kafkalite.protocol.record_batch import build_batch

            assert create_topic(broker.port, "idle-check", 1) == 0
            assert produce_raw(broker.port, "idle-check", 0, build_batch([(None, b"v")], timestamps=_now_ms()))[
                "error_code"] == 0
            assert [v for _, v in read_partition(broker.port, "idle-check", 0)[1]] == [b"v"]
        rss, hwm = broker.memory_kb()
        if served > 5:
            raise CheckFailed(f"with {count} idle connections a client waited {served:.1f}s")
        return {"connections": count, "open_s": round(opened, 2), "served_in_s": round(served, 3),
                "rss_mb": rss // 1024}
    finally:
        for sock in socks:
            sock.close()
        broker.kill()
