"""The fault harness behind scripts/torture.py and tests/reliability/ (RELIABILITY.md R1, R4, R5, R6).

Oracle: every message value is unique (`<producer>:<seq>`); the harness records what the broker
acknowledged (value -> partition, offset), then reads every partition back over a raw socket and checks
  - no acknowledged message is missing, and each still sits at the offset it was acknowledged at;
  - no value appears twice in the log (idempotent producers);
  - per producer and partition, sequence order == offset order; offsets are dense.
Every broker and client process started here is stopped again, also when a check fails.
"""

from __future__ import annotations

import json
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
                raise CheckFailed(f"fetch {topic}-{partition}@{offset} returned nothing below hw {part['high_watermark']}")


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
                    examples.append(f"partition {p} offset {offset}: {producer} seq {seq_no} after {last_seq[producer]}")
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
                examples.append(f"offset {p}@{offset} acknowledged for {value[:40]!r} now holds {at.get((p, offset))!r:.60}")
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
    return Producer(conf)


class ProduceLoad:
    """Idempotent librdkafka producers writing `<name>:<seq>` round-robin over the partitions, with at
    most `max_queued` messages unacknowledged. Call pump() often from one thread."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, ledger: Ledger, producers: int = 2,
                 max_queued: int = 2000, pad: int = 0, **overrides):
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
        left = 0
        for _, producer in self.producers:
            left = producer.flush(max(0.1, deadline - time.monotonic()))
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

    def probe(self) -> int:
        from kafkalite.protocol.record_batch import build_batch

        value = f"probe:{self.n}".encode()
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

    def until(self, want: int, timeout: float, load: ProduceLoad) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.probe() == want:
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
            if not prober.until(56, 30, load):
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
