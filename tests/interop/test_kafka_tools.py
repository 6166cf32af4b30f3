"""Kafka's own command-line tools (the kafka-tools jar) against kafkalite, run as a user runs bin/kafka-*.sh.

Every tool test runs twice: against kafkalite and against Apache Kafka itself, with the same tool invocations
and the same expectations, so a difference between the two shows as a failure on one side. What the tools print
is checked, and what they changed is checked again through another client (confluent-kafka, librdkafka).
The last two tests check the reference itself (scripts/kafka_reference.py): its three-node cluster and its
overrides.
"""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, OFFSET_INVALID, Consumer, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource, ConfigSource, NewTopic, ResourceType

from kafka_ref import Target, kafka_reference_module, kafkalite_or_kafka, require_kafka, run_kafka_tool

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module", params=["kafkalite", "kafka"])
def broker(request, tmp_path_factory):
    """One kafkalite and one Apache Kafka for the whole module."""
    yield from kafkalite_or_kafka(request, tmp_path_factory, "kafkalite-tools")


def tool(name: str, *args: str, input: str | None = None) -> str:
    """A tool run that must succeed; its stdout."""
    done = run_kafka_tool(name, *args, input=input)
    assert done.returncode == 0, f"{name} {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def failing_tool(name: str, *args: str) -> str:
    """A tool run that must fail (a broker error); its stdout and stderr together."""
    done = run_kafka_tool(name, *args)
    assert done.returncode != 0, f"{name} {' '.join(args)} succeeded:\n{done.stdout}"
    return done.stdout + done.stderr


# ---------------------------------------------------------------- checks through librdkafka


def create_topic(target: Target, topic: str, partitions: int = 1, config: dict[str, str] | None = None) -> None:
    target.admin.create_topics([NewTopic(topic, partitions, 1, config=config or {})])[topic].result(30)


def produce(target: Target, topic: str, records: list[dict]) -> None:
    """Each record a dict of Producer.produce arguments (partition, key, value, timestamp, headers)."""
    producer = Producer({"bootstrap.servers": target.bootstrap, "acks": "all", "linger.ms": 0})
    for record in records:
        producer.produce(topic, **record)
    assert producer.flush(30) == 0


def partition_count(target: Target, topic: str) -> int:
    return len(target.admin.list_topics(topic, timeout=10).topics[topic].partitions)


def read_all(target: Target, topic: str) -> list[tuple[int, int, str, str]]:
    """(partition, offset, key, value) of every record from each partition's log start to its end."""
    consumer = Consumer({"bootstrap.servers": target.bootstrap, "group.id": "tools-checker",
                         "enable.auto.commit": False})
    try:
        partitions = [TopicPartition(topic, p) for p in range(partition_count(target, topic))]
        want = sum(high - low for low, high in (consumer.get_watermark_offsets(tp, timeout=10) for tp in partitions))
        consumer.assign([TopicPartition(topic, tp.partition, OFFSET_BEGINNING) for tp in partitions])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < want and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None:
                assert msg.error() is None, msg.error()
                got.append((msg.partition(), msg.offset(), msg.key().decode(), msg.value().decode()))
        assert len(got) == want, f"read {len(got)} of {want} records"
        return sorted(got)
    finally:
        consumer.close()


def committed(target: Target, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": target.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return {tp.partition: tp.offset for tp in consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=10)}
    finally:
        consumer.close()


def commit(target: Target, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commits offsets for a group with no members (as a standalone consumer does)."""
    consumer = Consumer({"bootstrap.servers": target.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()


def topic_configs(target: Target, topic: str) -> dict:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return target.admin.describe_configs([resource])[resource].result(30)


def delete_records_before(target: Target, topic: str, partition: int, offset: int) -> None:
    for future in target.admin.delete_records([TopicPartition(topic, partition, offset)]).values():
        assert future.result(30).low_watermark == offset


def bootstrap_args(target: Target) -> tuple[str, str]:
    return ("--bootstrap-server", target.bootstrap)


# ---------------------------------------------------------------- the tools


def test_console_producer_parses_keys(broker):
    """kafka-console-producer with parse.key=true and key.separator=":" (lz4-compressed, acks=all) stores each
    line as key and value, splitting at the first separator only, and its default partitioner keeps each key in
    one partition in order; read back through librdkafka."""
    topic = "tools-console-producer"
    create_topic(broker, topic, partitions=3)
    lines = [(f"user-{i % 5}", f"event-{i}") for i in range(20)] + [("user-0", "payload:with:colons")]
    tool("kafka-console-producer", *bootstrap_args(broker), "--topic", topic, "--compression-codec", "lz4",
         "--producer-property", "acks=all", "--property", "parse.key=true", "--property", "key.separator=:",
         input="".join(f"{key}:{value}\n" for key, value in lines))

    records = read_all(broker, topic)
    assert sorted((key, value) for _, _, key, value in records) == sorted(lines)
    for key in {key for key, _ in lines}:
        mine = [(p, value) for p, _, k, value in records if k == key]
        assert len({p for p, _ in mine}) == 1, f"{key} spread over partitions {mine}"
        assert [value for _, value in mine] == [value for k, value in lines if k == key]
    for partition in range(3):
        offsets = [offset for p, offset, _, _ in records if p == partition]
        assert offsets == list(range(len(offsets)))


def test_console_consumer_from_beginning_prints_keys(broker):
    """kafka-console-consumer --from-beginning with print.key=true and a key.separator prints every record as
    key<sep>value in offset order, stops after --max-messages, and commits its position for its --group;
    --partition/--offset with print.timestamp and print.headers starts mid-log and shows CreateTime and headers."""
    topic, group = "tools-console-consumer", "tools-console-group"
    create_topic(broker, topic)
    base_ms = int(time.time() * 1000) - 60_000  # recent: older records would fall to retention.ms
    produce(broker, topic, [{"key": f"k{i}", "value": f"v{i}", "timestamp": base_ms + i,
                             "headers": [("source", b"librdkafka")]} for i in range(8)])

    out = tool("kafka-console-consumer", *bootstrap_args(broker), "--topic", topic, "--from-beginning",
               "--group", group, "--max-messages", "8", "--timeout-ms", "30000",
               "--property", "print.key=true", "--property", "key.separator==")
    assert out.splitlines() == [f"k{i}=v{i}" for i in range(8)]
    assert committed(broker, group, topic, 1) == {0: 8}

    out = tool("kafka-console-consumer", *bootstrap_args(broker), "--topic", topic, "--partition", "0",
               "--offset", "5", "--max-messages", "3", "--timeout-ms", "30000", "--property", "print.key=true",
               "--property", "print.timestamp=true", "--property", "print.headers=true")
    assert out.splitlines() == [f"CreateTime:{base_ms + i}\tsource:librdkafka\tk{i}\tv{i}" for i in (5, 6, 7)]


def test_topics_create_describe_alter(broker):
    """kafka-topics --create (partitions, replication factor, a config), --describe (counts, leader, replicas,
    ISR, the config) and --alter --partitions (an increase works, a decrease is refused by the broker with
    Kafka's message); the partition counts and the config are checked through librdkafka too."""
    topic = "tools-topics"
    out = tool("kafka-topics", *bootstrap_args(broker), "--create", "--topic", topic, "--partitions", "2",
               "--replication-factor", "1", "--config", "retention.ms=3600000")
    assert out.strip() == f"Created topic {topic}."
    assert partition_count(broker, topic) == 2
    assert topic_configs(broker, topic)["retention.ms"].value == "3600000"

    node_id = next(iter(broker.admin.list_topics(timeout=10).brokers))
    out = tool("kafka-topics", *bootstrap_args(broker), "--describe", "--topic", topic)
    header, *rows = [line.strip() for line in out.splitlines() if line.strip()]
    fields = dict(part.split(": ", 1) for part in header.split("\t"))
    assert (fields["Topic"], fields["PartitionCount"], fields["ReplicationFactor"]) == (topic, "2", "1")
    assert "retention.ms=3600000" in fields["Configs"].split(",")
    described = [dict(part.split(":", 1) for part in row.split("\t")) for row in rows]
    assert [(r["Partition"].strip(), r["Leader"].strip(), r["Replicas"].strip(), r["Isr"].strip())
            for r in described] == [(str(p), str(node_id), str(node_id), str(node_id)) for p in range(2)]

    tool("kafka-topics", *bootstrap_args(broker), "--alter", "--topic", topic, "--partitions", "4")
    assert partition_count(broker, topic) == 4

    refused = failing_tool("kafka-topics", *bootstrap_args(broker), "--alter", "--topic", topic, "--partitions", "3")
    assert "InvalidPartitionsException" in refused, refused
    assert partition_count(broker, topic) == 4


def parse_group_table(out: str, group: str) -> dict[int, list[str]]:
    """kafka-consumer-groups' table rows for `group`, by partition: the columns after GROUP TOPIC PARTITION."""
    rows = {}
    for line in out.splitlines():
        cells = line.split()
        if len(cells) >= 4 and cells[0] == group:
            rows[int(cells[2])] = cells[3:]
    return rows


def test_consumer_groups_describe_and_reset_to_earliest(broker):
    """kafka-consumer-groups --describe shows each partition's committed offset, log end and lag for a group
    without members; --reset-offsets --to-earliest previews with --dry-run (nothing committed) and commits with
    --execute, where earliest is the log start offset that DeleteRecords moved."""
    topic, group = "tools-groups", "tools-reset-group"
    create_topic(broker, topic, partitions=2)
    produce(broker, topic, [{"partition": 0, "key": "a", "value": str(i)} for i in range(4)]
            + [{"partition": 1, "key": "b", "value": str(i)} for i in range(2)])
    delete_records_before(broker, topic, 0, 1)
    commit(broker, group, topic, {0: 3, 1: 2})

    out = run_kafka_tool("kafka-consumer-groups", *bootstrap_args(broker), "--describe", "--group", group)
    assert out.returncode == 0, out.stderr
    assert f"Consumer group '{group}' has no active members." in out.stdout + out.stderr
    described = parse_group_table(out.stdout, group)
    # CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
    assert described == {0: ["3", "4", "1", "-", "-", "-"], 1: ["2", "2", "0", "-", "-", "-"]}

    reset = ("--reset-offsets", "--to-earliest", "--group", group, "--topic", topic)
    out = tool("kafka-consumer-groups", *bootstrap_args(broker), *reset, "--dry-run")
    assert parse_group_table(out, group) == {0: ["1"], 1: ["0"]}  # TOPIC PARTITION NEW-OFFSET
    assert committed(broker, group, topic, 2) == {0: 3, 1: 2}

    out = tool("kafka-consumer-groups", *bootstrap_args(broker), *reset, "--execute")
    assert parse_group_table(out, group) == {0: ["1"], 1: ["0"]}
    assert committed(broker, group, topic, 2) == {0: 1, 1: 0}


@contextlib.contextmanager
def live_member(target: Target, group: str, topic: str, client_id: str):
    """A librdkafka consumer in `group`, assigned and polling in a thread until the block ends."""
    consumer = Consumer({"bootstrap.servers": target.bootstrap, "group.id": group, "client.id": client_id,
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    deadline = time.monotonic() + 30
    while not consumer.assignment():
        assert time.monotonic() < deadline, "the consumer was never assigned partitions"
        consumer.poll(0.2)
    done = threading.Event()

    def keep_polling() -> None:  # a member that stops polling is removed from the group
        while not done.is_set():
            consumer.poll(0.2)

    poller = threading.Thread(target=keep_polling)
    poller.start()
    try:
        yield
    finally:
        done.set()
        poller.join(30)
        consumer.close()


def test_consumer_groups_with_a_live_member(broker):
    """With one consumer in the group, kafka-consumer-groups --describe --members shows its id, host and client
    id with both partitions, --state shows Stable with the range assignor and the coordinator, and
    --reset-offsets --execute is refused (the group is active) and commits nothing."""
    topic, group = "tools-live-group", "tools-live-group"
    create_topic(broker, topic, partitions=2)
    with live_member(broker, group, topic, client_id="tools-live-client"):
        out = tool("kafka-consumer-groups", *bootstrap_args(broker), "--describe", "--group", group, "--members")
        [member] = [line.split() for line in out.splitlines() if line.startswith(group)]
        assert member[0] == group and member[1].startswith("tools-live-client-")
        assert member[2:] == ["/127.0.0.1", "tools-live-client", "2"]  # HOST CLIENT-ID #PARTITIONS

        out = tool("kafka-consumer-groups", *bootstrap_args(broker), "--describe", "--group", group, "--state")
        [state] = [line.split() for line in out.splitlines() if line.startswith(group)]
        node_id = next(iter(broker.admin.list_topics(timeout=10).brokers))
        # GROUP COORDINATOR (ID) ASSIGNMENT-STRATEGY STATE #MEMBERS
        assert state == [group, broker.bootstrap, f"({node_id})", "range", "Stable", "1"]

        out = tool("kafka-consumer-groups", *bootstrap_args(broker), "--reset-offsets", "--to-earliest",
                   "--group", group, "--topic", topic, "--execute")
        assert (f"Assignments can only be reset if the group '{group}' is inactive, but the current state is "
                "Stable.") in out
        assert committed(broker, group, topic, 2) == {0: OFFSET_INVALID, 1: OFFSET_INVALID}


def test_configs_describe_and_alter_a_topic(broker):
    """kafka-configs --describe lists a topic's override with its source; --alter --add-config sets two
    configs and --delete-config removes one (back to the default), each checked through DescribeConfigs from
    librdkafka; an unknown config name is refused by the broker and changes nothing."""
    topic = "tools-configs"
    create_topic(broker, topic, config={"retention.ms": "3600000"})
    entity = ("--entity-type", "topics", "--entity-name", topic)

    out = tool("kafka-configs", *bootstrap_args(broker), "--describe", *entity)
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    assert lines[0] == f"Dynamic configs for topic {topic} are:"
    assert [line.split(" ", 1)[0] for line in lines[1:]] == ["retention.ms=3600000"]
    # The source comes first among the synonyms. What follows differs: kafkalite adds the broker default
    # (DEFAULT_CONFIG:log.retention.ms=604800000), Kafka lists none (its default comes from log.retention.hours).
    assert lines[1].startswith(
        "retention.ms=3600000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=3600000"), lines[1]

    out = tool("kafka-configs", *bootstrap_args(broker), "--alter", *entity,
               "--add-config", "retention.ms=7200000,max.message.bytes=2000000")
    assert out.strip() == f"Completed updating config for topic {topic}."
    configs = topic_configs(broker, topic)
    assert (configs["retention.ms"].value, configs["retention.ms"].source) == (
        "7200000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert (configs["max.message.bytes"].value, configs["max.message.bytes"].source) == (
        "2000000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)

    tool("kafka-configs", *bootstrap_args(broker), "--alter", *entity, "--delete-config", "retention.ms")
    configs = topic_configs(broker, topic)
    assert (configs["retention.ms"].value, configs["retention.ms"].source) == (
        "604800000", ConfigSource.DEFAULT_CONFIG.value)
    assert configs["max.message.bytes"].value == "2000000"

    refused = failing_tool("kafka-configs", *bootstrap_args(broker), "--alter", *entity,
                           "--add-config", "no.such.config=1")
    assert "no.such.config" in refused, refused
    assert "no.such.config" not in topic_configs(broker, topic)


def test_get_offsets_latest_earliest_by_timestamp_and_max_timestamp(broker):
    """kafka-get-offsets prints topic:partition:offset for --time -1 (log end), -2 (log start, after
    DeleteRecords), a timestamp (the first offset at or after it) and -3 (the record with the largest timestamp,
    ListOffsets v7)."""
    topic = "tools-get-offsets"
    create_topic(broker, topic, partitions=2)
    base_ms = int(time.time() * 1000) - 60_000  # recent: older records would fall to retention.ms
    # Partition 0: five records, the largest timestamp at offset 2; partition 1: three, increasing.
    produce(broker, topic, [{"partition": 0, "key": "k", "value": str(i), "timestamp": base_ms + ts}
                            for i, ts in enumerate([10, 20, 90, 30, 40])]
            + [{"partition": 1, "key": "k", "value": str(i), "timestamp": base_ms + ts}
               for i, ts in enumerate([50, 60, 70])])
    delete_records_before(broker, topic, 0, 1)

    def offsets(time_arg: str) -> list[str]:
        return tool("kafka-get-offsets", *bootstrap_args(broker), "--topic", topic, "--time", time_arg).split()

    assert offsets("-1") == [f"{topic}:0:5", f"{topic}:1:3"]
    assert offsets("-2") == [f"{topic}:0:1", f"{topic}:1:0"]
    assert offsets(str(base_ms + 25)) == [f"{topic}:0:2", f"{topic}:1:0"]
    assert offsets("-3") == [f"{topic}:0:2", f"{topic}:1:2"]


def test_reference_cluster_of_three(tmp_path):
    """scripts/kafka_reference.py's KafkaCluster (what the cluster work compares kafkalite with) is three KRaft
    voters, as kafka-metadata-quorum reports; a topic created there with replication factor 3 has all three in
    its ISR, and after one node is killed its partitions are led by the other two."""
    require_kafka()
    with kafka_reference_module.KafkaCluster(str(tmp_path), 3) as cluster:
        bootstrap = ("--bootstrap-server", cluster.bootstrap)
        out = tool("kafka-metadata-quorum", *bootstrap, "describe", "--status")
        status = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        voters = status["CurrentVoters"]
        assert all(f'"id": {n}' in voters for n in range(3)) and '"id": 3' not in voters, out

        tool("kafka-topics", *bootstrap, "--create", "--topic", "replicated", "--partitions", "3",
             "--replication-factor", "3")
        target = Target("kafka-cluster", cluster.bootstrap)
        partitions = target.admin.list_topics("replicated", timeout=10).topics["replicated"].partitions
        assert {p: sorted(info.isrs) for p, info in partitions.items()} == {p: [0, 1, 2] for p in range(3)}

        victim = cluster.brokers[partitions[0].leader]
        victim.kill()
        survivors = Target("survivors", ",".join(b.bootstrap for b in cluster.brokers if b is not victim))
        deadline = time.monotonic() + 60
        while True:
            partitions = survivors.admin.list_topics("replicated", timeout=10).topics["replicated"].partitions
            leaders = {info.leader for info in partitions.values()}
            if victim.node_id not in leaders and -1 not in leaders:
                break
            assert time.monotonic() < deadline, f"partitions still led by the killed node: {leaders}"
            time.sleep(0.2)  # polling the metadata with a deadline: the election is the controller's
        assert leaders <= {b.node_id for b in cluster.brokers if b is not victim}


def test_reference_overrides_name_broker_settings(tmp_path):
    """An override given by a topic config's name (flush.messages, as the fsync-per-write benchmark passes it)
    sets its broker-wide default under the name server.properties knows (Kafka ignores flush.messages there);
    other keys pass through, and the internal topics of a single node are replicated once."""
    broker = kafka_reference_module.KafkaBroker(str(tmp_path), overrides={"flush.messages": "1", "num.io.threads": "2"})
    props = broker.server_properties()
    assert props["log.flush.interval.messages"] == "1" and "flush.messages" not in props
    assert props["num.io.threads"] == "2"
    assert props["offsets.topic.replication.factor"] == props["transaction.state.log.replication.factor"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["listeners"].startswith(f"PLAINTEXT://127.0.0.1:{broker.port},")
