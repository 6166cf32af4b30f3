"""One consumer-group member on a real Python Kafka client, for tests/interop/test_groups.py and
scripts/bench_groups.py.

    python group_member.py CLIENT BOOTSTRAP TOPIC GROUP [--session-ms N] [--heartbeat-ms N]
                           [--assignor NAME] [--max-seconds N] [--no-commit] [--client-id ID]

CLIENT is confluent (librdkafka), aiokafka or kafka-python. The member subscribes to TOPIC in
GROUP, reading from the earliest offset where the group has no commit, and after each poll commits
(synchronously) the offset after the last message it read of each partition. It prints one JSON
line per event, each with "t" (time.time()) and "event":

    {"event": "started"}                                    the client is built and started; subscribe is next
    {"event": "assigned", "partitions": [0, 3]}             its whole assignment, after every change
    {"event": "revoked", "partitions": [3]}                 partitions taken away (or lost)
    {"event": "consumed", "partition": 0, "offset": 7, "value": "m-42"}
    {"event": "committed", "offsets": {"0": 8}}             a commit the broker acknowledged
    {"event": "commit_failed", "error": "..."}              e.g. during a rebalance; retried next poll
    {"event": "closed"}                                     after a clean close (it left the group)

SIGTERM makes it close cleanly (commit, leave the group); kill -9 is a crash. It always exits
after --max-seconds, so a forgotten member cannot outlive its test for long.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time

stopping = False


def emit(event: str, **fields) -> None:
    sys.stdout.write(json.dumps({"t": time.time(), "event": event, **fields}) + "\n")
    sys.stdout.flush()


def on_sigterm(*_):
    global stopping
    stopping = True


def timeouts(args, session_name: str, heartbeat_name: str) -> dict:
    """The client's session and heartbeat settings; 0 leaves the client's default."""
    given = {session_name: args.session_ms, heartbeat_name: args.heartbeat_ms}
    return {name: value for name, value in given.items() if value > 0}


class Tracker:
    """The member's current assignment (of TOPIC), and what to commit after a poll."""

    def __init__(self):
        self.owned: set[int] = set()
        self.pending: dict[int, int] = {}  # partition -> next offset, read but not committed

    def assign(self, partitions) -> None:
        self.owned |= set(partitions)
        emit("assigned", partitions=sorted(self.owned))

    def revoke(self, partitions) -> None:
        partitions = set(partitions)
        self.owned -= partitions
        for p in partitions:
            self.pending.pop(p, None)
        emit("revoked", partitions=sorted(partitions))

    def consumed(self, partition: int, offset: int, value: bytes | None) -> None:
        emit("consumed", partition=partition, offset=offset, value=(value or b"").decode())
        self.pending[partition] = offset + 1

    def take(self) -> dict[int, int]:
        pending, self.pending = self.pending, {}
        return pending

    def committed(self, offsets: dict[int, int]) -> None:
        emit("committed", offsets={str(p): o for p, o in sorted(offsets.items())})

    def failed(self, offsets: dict[int, int], error: Exception) -> None:
        emit("commit_failed", error=repr(error))
        for p, o in offsets.items():  # retry with the next commit, unless it moved away meanwhile
            if p in self.owned:
                self.pending.setdefault(p, o)


def run_confluent(args, deadline: float) -> None:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    tracker = Tracker()
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap, "group.id": args.group, "client.id": args.client_id,
        **timeouts(args, "session.timeout.ms", "heartbeat.interval.ms"),
        "partition.assignment.strategy": args.assignor or "range,roundrobin",
        "auto.offset.reset": "earliest", "enable.auto.commit": False, "enable.auto.offset.store": False,
        "fetch.wait.max.ms": 100, "topic.metadata.refresh.interval.ms": 2000,
    })

    def assigned(c, partitions):
        tracker.assign(tp.partition for tp in partitions)

    def revoked(c, partitions):
        tracker.revoke(tp.partition for tp in partitions)

    emit("started")
    consumer.subscribe([args.topic], on_assign=assigned, on_revoke=revoked, on_lost=revoked)

    def commit() -> None:
        offsets = tracker.take()
        if not offsets:
            return
        try:
            consumer.commit(offsets=[TopicPartition(args.topic, p, o) for p, o in offsets.items()],
                            asynchronous=False)
        except KafkaException as e:
            tracker.failed(offsets, e)
        else:
            tracker.committed(offsets)

    while not stopping and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=100, timeout=0.2):
            if msg.error() is None:
                tracker.consumed(msg.partition(), msg.offset(), msg.value())
        if args.commit:
            commit()
    if args.commit:
        commit()
    consumer.close()
    emit("closed")


async def run_aiokafka(args, deadline: float) -> None:
    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
    from aiokafka.errors import KafkaError

    tracker = Tracker()

    class Listener(ConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked):
            if revoked:
                tracker.revoke(tp.partition for tp in revoked)

        async def on_partitions_assigned(self, assigned):
            tracker.assign(tp.partition for tp in assigned)

    kwargs = {}
    if args.assignor:
        from aiokafka.coordinator.assignors.range import RangePartitionAssignor
        from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
        kwargs["partition_assignment_strategy"] = [
            {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor}[name]
            for name in args.assignor.split(",")]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap, group_id=args.group, client_id=args.client_id,
        auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=100,
        metadata_max_age_ms=2000, **timeouts(args, "session_timeout_ms", "heartbeat_interval_ms"), **kwargs)
    await consumer.start()
    emit("started")
    consumer.subscribe([args.topic], listener=Listener())

    async def commit() -> None:
        offsets = tracker.take()
        if not offsets:
            return
        try:
            await consumer.commit({TopicPartition(args.topic, p): o for p, o in offsets.items()})
        except KafkaError as e:
            tracker.failed(offsets, e)
        else:
            tracker.committed(offsets)

    try:
        while not stopping and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=100)
            for tp, messages in batches.items():
                for msg in messages:
                    tracker.consumed(tp.partition, msg.offset, msg.value)
            if args.commit:
                await commit()
        if args.commit:
            await commit()
    finally:
        await consumer.stop()
    emit("closed")


def run_kafka_python(args, deadline: float) -> None:
    from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError
    from kafka.structs import OffsetAndMetadata

    tracker = Tracker()

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            if revoked:
                tracker.revoke(tp.partition for tp in revoked)

        def on_partitions_assigned(self, assigned):
            tracker.assign(tp.partition for tp in assigned)

    kwargs = {}
    if args.assignor:
        from kafka.coordinator.assignors.range import RangePartitionAssignor
        from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
        kwargs["partition_assignment_strategy"] = [
            {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor}[name]
            for name in args.assignor.split(",")]
    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap, group_id=args.group, client_id=args.client_id,
        auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=100,
        metadata_max_age_ms=2000, **timeouts(args, "session_timeout_ms", "heartbeat_interval_ms"), **kwargs)
    emit("started")
    consumer.subscribe([args.topic], listener=Listener())

    def commit() -> None:
        offsets = tracker.take()
        if not offsets:
            return
        try:
            consumer.commit({TopicPartition(args.topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})
        except KafkaError as e:
            tracker.failed(offsets, e)
        else:
            tracker.committed(offsets)

    try:
        while not stopping and time.monotonic() < deadline:
            batches = consumer.poll(timeout_ms=200, max_records=100)
            for tp, messages in batches.items():
                for msg in messages:
                    tracker.consumed(tp.partition, msg.offset, msg.value)
            if args.commit:
                commit()
        if args.commit:
            commit()
    finally:
        consumer.close()
    emit("closed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("client", choices=["confluent", "aiokafka", "kafka-python"])
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("group")
    parser.add_argument("--client-id", default="group-member")
    parser.add_argument("--session-ms", type=int, default=6000, help="0: the client's default")
    parser.add_argument("--heartbeat-ms", type=int, default=1000, help="0: the client's default")
    parser.add_argument("--assignor", default=None,
                        help="comma-separated assignor names (librdkafka: range, roundrobin, cooperative-sticky)")
    parser.add_argument("--max-seconds", type=float, default=120)
    parser.add_argument("--no-commit", dest="commit", action="store_false")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    deadline = time.monotonic() + args.max_seconds
    if args.client == "confluent":
        run_confluent(args, deadline)
    elif args.client == "aiokafka":
        asyncio.run(run_aiokafka(args, deadline))
    else:
        run_kafka_python(args, deadline)


if __name__ == "__main__":
    main()
