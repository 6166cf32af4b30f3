"""Record golden frames: a loopback proxy between real Kafka clients and a real kafkalite broker.

    python scripts/record_frames.py proxy --broker 127.0.0.1:9092 --listen 127.0.0.1:19092 --out DIR [--client NAME]
    python scripts/record_frames.py sessions --out tests/golden [--clients confluent,aiokafka,...]

`proxy` only records: start the broker with `--advertised-listener <the proxy's address>` so that clients,
which learn addresses from Metadata, keep coming back through the proxy. `sessions` does it all: it starts a
proxy on an ephemeral port, a broker advertising that port, and runs a realistic session of each client
(confluent-kafka, aiokafka, kafka-python, kafkajs, kcat) through it, one after another.

Frames are saved as <out>/<client>/<api>_<request|response>_v<N>_<nnn>.bin: the bytes after the size prefix.
Requests are named from their own header; a response is named after the request with the same correlation id
on the same connection. Identical frames (ignoring the correlation id) are kept once, and only a few are kept
per (api, direction, version, variant); a Produce request's or Fetch response's variant is the set of codecs
in its batches, so every codec a client uses is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from kafkalite.protocol.api_keys import ApiKey  # noqa: E402 - after the sys.path setup above
from kafkalite.protocol import compression, wire  # noqa: E402
from kafkalite.protocol.framing import FrameSplitter  # noqa: E402
from kafkalite.protocol.messages import APIS  # noqa: E402
from kafkalite.protocol.record_batch import iter_batches_lenient  # noqa: E402

MAX_KEPT_FRAME = 64 * 1024  # larger frames are not worth keeping in the repository
KEEP_PER_KIND = 3
PRODUCE, FETCH = ApiKey.PRODUCE, ApiKey.FETCH
_REQUEST_START = struct.Struct(">hhi")
_CORRELATION = struct.Struct(">i")
NODE_DIR = os.path.join(ROOT, "tests", "interop", "node")


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def api_file_name(api_key: int) -> str:
    api = APIS.get(api_key)
    return snake_case(api.name) if api else f"api{api_key}"


def codecs_in(body: dict) -> str:
    names = {compression.NAMES.get(b.codec, str(b.codec))
             for r in wire.records_fields(body) for b in iter_batches_lenient(r)}
    return "+".join(sorted(names))


class FrameRecorder:
    """Decides which frames to keep and writes them. Thread-safe: the proxy calls it from its loop thread."""

    def __init__(self, out_dir: str, keep: int = KEEP_PER_KIND):
        self.out_dir = out_dir
        self.keep = keep
        self.lock = threading.Lock()
        self.seen: set[tuple[str, bytes]] = set()
        self.kept: dict[tuple, int] = defaultdict(int)  # (client, api, direction, version, variant) -> count
        self.numbers: dict[tuple, int] = defaultdict(int)  # (client, api, direction, version) -> next nnn
        self.sent: dict[str, set[tuple[int, int]]] = defaultdict(set)  # every (api, version) each client sent

    def request(self, client: str, frame: bytes) -> tuple[int, int, int] | None:
        """Record a request frame; returns (api_key, version, correlation_id) for matching its response."""
        if len(frame) < _REQUEST_START.size:
            return None
        api_key, version, correlation_id = _REQUEST_START.unpack_from(frame, 0)
        with self.lock:
            self.sent[client].add((api_key, version))
        variant = ""
        if api_key == PRODUCE:
            try:
                variant = codecs_in(wire.decode_request(memoryview(frame))[1])
            except Exception:  # an undecodable frame is kept too: that is what the golden test is for
                variant = "undecodable"
        masked = frame[:4] + b"\0\0\0\0" + frame[8:]  # the correlation id differs in every frame
        self._save(client, api_key, "request", version, variant, masked, frame)
        return api_key, version, correlation_id

    def response(self, client: str, api_key: int, version: int, frame: bytes) -> None:
        variant = ""
        if api_key == FETCH:
            try:
                variant = codecs_in(wire.decode_response(api_key, version, memoryview(frame))[1])
            except Exception:
                variant = "undecodable"
        self._save(client, api_key, "response", version, variant, b"\0\0\0\0" + frame[4:], frame)

    def _save(self, client, api_key, direction, version, variant, masked: bytes, frame: bytes) -> None:
        if len(frame) > MAX_KEPT_FRAME:
            return
        kind = (client, api_key, direction, version, variant)
        digest = hashlib.sha256(masked).digest()
        with self.lock:
            if (client, digest) in self.seen or self.kept[kind] >= self.keep:
                return
            self.seen.add((client, digest))
            self.kept[kind] += 1
            name_key = (client, api_key, direction, version)
            number = self.numbers[name_key]
            self.numbers[name_key] += 1
        folder = os.path.join(self.out_dir, client)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{api_file_name(api_key)}_{direction}_v{version}_{number:03d}.bin")
        with open(path, "wb") as f:
            f.write(frame)


class RecordingProxy:
    """Forwards each accepted connection to the broker, recording both directions frame by frame.
    Runs its own event loop in a thread, so synchronous clients can run in the caller's thread."""

    def __init__(self, recorder: FrameRecorder, broker: tuple[str, int], listen: tuple[str, int], client: str):
        self.recorder = recorder
        self.broker = broker
        self.listen = listen
        self.client = client  # connections are labelled with the client current when they are accepted
        self.port: int | None = None
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.AbstractServer | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> "RecordingProxy":
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(asyncio.start_server(self._serve, *self.listen))
            self.port = self.server.sockets[0].getsockname()[1]
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        started.wait(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _serve(self, client_reader, client_writer) -> None:
        client = self.client
        pending: dict[int, tuple[int, int]] = {}  # correlation id -> (api_key, version)
        try:
            broker_reader, broker_writer = await asyncio.open_connection(*self.broker)
        except OSError:
            client_writer.close()
            return

        async def pump(reader, writer, on_frame) -> None:
            splitter = FrameSplitter()
            try:
                while data := await reader.read(65536):
                    writer.write(data)  # forward first, untouched: recording never changes the conversation
                    for frame in splitter.feed(data):
                        on_frame(bytes(frame))
                    await writer.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        def on_request(frame: bytes) -> None:
            found = self.recorder.request(client, frame)
            if found:
                pending[found[2]] = found[:2]

        def on_response(frame: bytes) -> None:
            if len(frame) < 4:
                return
            match = pending.pop(_CORRELATION.unpack_from(frame, 0)[0], None)
            if match:
                self.recorder.response(client, match[0], match[1], frame)

        await asyncio.gather(pump(client_reader, broker_writer, on_request),
                             pump(broker_reader, client_writer, on_response), return_exceptions=True)


def host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


# ---- client sessions: each one a realistic use of the client against `bootstrap` ----

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
MESSAGES = 12  # per codec: enough for several batches across partitions, small enough to keep frames small
FILLER = "golden" * 8  # compressible values, so that every codec really has something to shrink


def message_values(client: str, codec: str) -> list[tuple[bytes, bytes]]:
    return [(f"key-{i % 4}".encode(), f"{client}-{codec}-{i}-{FILLER}".encode()) for i in range(MESSAGES)]


def session_confluent(bootstrap: str) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

    topic = "golden-confluent"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(10)
    admin.list_topics(timeout=10)
    for codec in CODECS:
        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                             "compression.type": codec, "linger.ms": 5})
        for key, value in message_values("confluent-kafka", codec):
            producer.produce(topic, key=key, value=value, headers=[("codec", codec.encode())])
        assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "golden-confluent-group",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "heartbeat.interval.ms": 100, "session.timeout.ms": 6000, "check.crcs": True})
    consumer.subscribe([topic])
    got = 0
    deadline = time.monotonic() + 30
    while got < MESSAGES * len(CODECS) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got += 1
    assert got == MESSAGES * len(CODECS), got
    consumer.commit(asynchronous=False)
    time.sleep(0.5)  # a few heartbeats
    consumer.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    consumer.offsets_for_times([TopicPartition(topic, p, int(time.time() * 1000) - 60000) for p in range(3)], 10)
    consumer.close()
    admin.list_consumer_groups().result(10)
    admin.describe_consumer_groups(["golden-confluent-group"])["golden-confluent-group"].result(10)
    for future in admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]).values():
        future.result(10)


def session_aiokafka(bootstrap: str) -> None:
    asyncio.run(_aiokafka(bootstrap))


async def _aiokafka(bootstrap: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    topic = "golden-aiokafka"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    await admin.list_consumer_groups()
    for codec in CODECS:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                                    compression_type=None if codec == "none" else codec, linger_ms=5)
        await producer.start()
        try:
            for key, value in message_values("aiokafka", codec):
                await producer.send(topic, key=key, value=value, headers=[("codec", codec.encode())])
            await producer.flush()
        finally:
            await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="golden-aiokafka-group",
                                auto_offset_reset="earliest", enable_auto_commit=False, check_crcs=True,
                                heartbeat_interval_ms=100, session_timeout_ms=6000)
    await consumer.start()
    try:
        got = 0
        deadline = time.monotonic() + 30
        while got < MESSAGES * len(CODECS) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            got += sum(len(msgs) for msgs in batches.values())
        assert got == MESSAGES * len(CODECS), got
        await consumer.commit()
        await asyncio.sleep(0.5)  # a few heartbeats
        partitions = [TopicPartition(topic, p) for p in range(3)]
        for tp in partitions:
            await consumer.committed(tp)
        await consumer.beginning_offsets(partitions)
        await consumer.end_offsets(partitions)
        await consumer.offsets_for_times({tp: int(time.time() * 1000) - 60000 for tp in partitions})
    finally:
        await consumer.stop()
    await admin.describe_consumer_groups(["golden-aiokafka-group"])
    await admin.close()


def session_kafka_python(bootstrap: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = "golden-kafka-python"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    admin.describe_cluster()
    admin.list_topics()
    for codec in CODECS:
        # kafka-python 3 is idempotent by default.
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                 compression_type=None if codec == "none" else codec)
        for key, value in message_values("kafka-python", codec):
            producer.send(topic, key=key, value=value, headers=[("codec", codec.encode())])
        producer.flush(30)
        producer.close(10)
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="golden-kafka-python-group",
                             auto_offset_reset="earliest", enable_auto_commit=False, check_crcs=True,
                             heartbeat_interval_ms=100, session_timeout_ms=6000)
    got = 0
    deadline = time.monotonic() + 30
    while got < MESSAGES * len(CODECS) and time.monotonic() < deadline:
        got += sum(len(msgs) for msgs in consumer.poll(timeout_ms=500).values())
    assert got == MESSAGES * len(CODECS), got
    consumer.commit()
    time.sleep(0.5)  # a few heartbeats
    partitions = [TopicPartition(topic, p) for p in range(3)]
    for tp in partitions:
        consumer.committed(tp)
    consumer.beginning_offsets(partitions)
    consumer.end_offsets(partitions)
    consumer.offsets_for_times({tp: int(time.time() * 1000) - 60000 for tp in partitions})
    consumer.close()
    admin.list_groups()
    admin.describe_groups(["golden-kafka-python-group"])
    admin.list_group_offsets("golden-kafka-python-group")
    admin.close()


KAFKAJS_SESSION = r"""
// admin, idempotent produce under every codec kafkajs has (snappy and lz4 through its plugins), offsets,
// a group consumer that commits and heartbeats, then the admin's group calls.
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs');
CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy');
CompressionCodecs[CompressionTypes.LZ4] = new (require('kafkajs-lz4'))().codec;
const [bootstrap, topic, group, perCodec, filler] = process.argv.slice(1);
const kafka = new Kafka({ clientId: 'golden-kafkajs', brokers: [bootstrap], logLevel: logLevel.ERROR });
const codecs = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP,
                 snappy: CompressionTypes.Snappy, lz4: CompressionTypes.LZ4 };
(async () => {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
  await admin.fetchTopicMetadata({ topics: [topic] });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  for (const [name, codec] of Object.entries(codecs)) {
    const messages = [];
    for (let i = 0; i < Number(perCodec); i++) {
      messages.push({ key: `key-${i % 4}`, value: `kafkajs-${name}-${i}-${filler}`, headers: { codec: name } });
    }
    await producer.send({ topic, acks: -1, compression: codec, messages });
  }
  await producer.disconnect();
  await admin.fetchTopicOffsets(topic);
  await admin.fetchTopicOffsetsByTimestamp(topic, Date.now() - 60000);
  const consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: 100, heartbeatInterval: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let got = 0;
  const want = Object.keys(codecs).length * Number(perCodec);
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out with ${got} of ${want}`)), 30000);
    consumer.run({ eachMessage: async () => { if (++got === want) { clearTimeout(timer); resolve(); } } })
      .catch(reject);
  });
  await new Promise(r => setTimeout(r, 1000));  // heartbeats and an auto-commit
  await consumer.disconnect();
  await admin.fetchOffsets({ groupId: group, topics: [topic] });
  await admin.listGroups();
  await admin.describeGroups([group]);
  await admin.disconnect();
})().catch(e => { console.error(e.stack || String(e)); process.exit(1); });
"""


def session_kafkajs(bootstrap: str) -> None:
    subprocess.run(["node", "-e", KAFKAJS_SESSION, bootstrap, "golden-kafkajs", "golden-kafkajs-group",
                    str(MESSAGES), FILLER], cwd=NODE_DIR, check=True, timeout=120)


def session_kcat(bootstrap: str) -> None:
    topic = "golden-kcat"
    kcat = ["kcat", "-b", bootstrap, "-q"]
    run = dict(check=True, timeout=60, stdout=subprocess.DEVNULL)
    subprocess.run([*kcat, "-L"], **run)
    # librdkafka 2.0.2 (Debian's kcat) sends gzip, snappy and lz4 uncompressed to a broker whose Produce minimum
    # is above v0 (librdkafka issue #4956); the runs stay, to record exactly that.
    for codec in CODECS:
        lines = "".join(f"{k.decode()}:{v.decode()}\n" for k, v in message_values("kcat", codec))
        subprocess.run([*kcat, "-P", "-t", topic, "-K", ":", "-z", codec, "-X", "enable.idempotence=true"],
                       input=lines.encode(), **run)
    subprocess.run([*kcat, "-C", "-t", topic, "-o", "beginning", "-e"], **run)
    subprocess.run([*kcat, "-Q", "-t", f"{topic}:0:{int(time.time() * 1000) - 60000}"], **run)
    # A balanced consumer: join, sync, heartbeats, commits, and leave when it exits at the end of the log.
    group = [*kcat, "-G", "golden-kcat-group", "-e", "-X", "heartbeat.interval.ms=100",
             "-X", "auto.commit.interval.ms=100"]
    subprocess.run([*group, "-o", "beginning", topic], **run)
    # Again without -o: now the start comes from the committed offsets (OffsetFetch).
    subprocess.run([*group, topic], **run)


SESSIONS = {
    "confluent-kafka": session_confluent,
    "aiokafka": session_aiokafka,
    "kafka-python": session_kafka_python,
    "kafkajs": session_kafkajs,
    "kcat": session_kcat,
}


def run_sessions(out_dir: str, clients: list[str]) -> FrameRecorder:
    from brokerproc import BrokerProcess

    recorder = FrameRecorder(out_dir)
    for client in clients:
        shutil.rmtree(os.path.join(out_dir, client), ignore_errors=True)
    with tempfile.TemporaryDirectory() as data_dir:
        proxy = RecordingProxy(recorder, ("127.0.0.1", 0), ("127.0.0.1", 0), clients[0]).start()
        broker = BrokerProcess(data_dir, "--advertised-listener", f"127.0.0.1:{proxy.port}")
        try:
            broker.start()
            proxy.broker = ("127.0.0.1", broker.port)
            bootstrap = f"127.0.0.1:{proxy.port}"
            for client in clients:
                proxy.client = client
                print(f"recording {client} ...", flush=True)
                SESSIONS[client](bootstrap)
                time.sleep(0.5)  # let the last responses reach the recorder before relabelling
        finally:
            proxy.stop()
            broker.stop()
    return recorder


def print_summary(recorder: FrameRecorder) -> None:
    for client, pairs in sorted(recorder.sent.items()):
        versions: dict[int, list[int]] = defaultdict(list)
        for api_key, version in sorted(pairs):
            versions[api_key].append(version)
        print(f"{client}: " + ", ".join(f"{api_file_name(k)} v{','.join(map(str, v))}" for k, v in versions.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    proxy = sub.add_parser("proxy", help="record whatever passes through until interrupted")
    proxy.add_argument("--broker", required=True, metavar="HOST:PORT")
    proxy.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT")
    proxy.add_argument("--out", required=True)
    proxy.add_argument("--client", default="unknown", help="the subfolder to record into")
    sessions = sub.add_parser("sessions", help="start a broker and the proxy, and record every client's session")
    sessions.add_argument("--out", default=os.path.join(ROOT, "tests", "golden"))
    sessions.add_argument("--clients", default=",".join(SESSIONS), help="comma-separated, of: " + ", ".join(SESSIONS))
    args = parser.parse_args()
    if args.command == "proxy":
        recorder = FrameRecorder(args.out)
        running = RecordingProxy(recorder, host_port(args.broker), host_port(args.listen), args.client).start()
        print(f"proxy listening on 127.0.0.1:{running.port}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            running.stop()
            print_summary(recorder)
    else:
        print_summary(run_sessions(args.out, args.clients.split(",")))


if __name__ == "__main__":
    main()
