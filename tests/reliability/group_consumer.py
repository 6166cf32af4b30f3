"""A confluent-kafka (librdkafka) group member for R6, run as a subprocess:

    python group_consumer.py BOOTSTRAP GROUP TOPIC LOGFILE

It consumes with auto-commit off and, every 100 ms or so, commits synchronously what it has consumed.
Each consumed record is written to LOGFILE (`c <partition> <offset>`) BEFORE any commit that covers it,
and each successful commit afterwards (`k <partition> <next offset>`), so a kill -9 at any point leaves
a log that says at least what was consumed. SIGTERM: commit, close cleanly (leave the group), exit 0.
"""

from __future__ import annotations

import signal
import sys
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition


def main() -> int:
    bootstrap, group, topic, path = sys.argv[1:5]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
        "reconnect.backoff.max.ms": 500, "broker.address.family": "v4", "log_level": 2,
    })
    out = open(path, "a", buffering=1)
    positions: dict[int, int] = {}  # partition -> next offset to commit
    committed: dict[int, int] = {}

    def commit() -> None:
        pending = {p: o for p, o in positions.items() if committed.get(p) != o}
        if not pending:
            return
        try:
            result = consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in pending.items()],
                                     asynchronous=False)
        except KafkaException as e:  # e.g. a rebalance in progress: try again later
            out.write(f"# commit failed: {e}\n")
            return
        for tp in result or []:
            if tp.error is None:
                committed[tp.partition] = tp.offset
                out.write(f"k {tp.partition} {tp.offset}\n")

    def on_revoke(consumer_, partitions):
        commit()
        for tp in partitions:
            positions.pop(tp.partition, None)

    consumer.subscribe([topic], on_revoke=on_revoke)
    last_commit = time.monotonic()
    while not stop:
        messages = consumer.consume(200, 0.1)
        lines = []
        for m in messages:
            if m.error() is None:
                lines.append(f"c {m.partition()} {m.offset()}\n")
                positions[m.partition()] = m.offset() + 1
        if lines:
            out.write("".join(lines))
            out.flush()
        if time.monotonic() - last_commit > 0.1:
            commit()
            last_commit = time.monotonic()
    commit()
    consumer.close()
    out.write("# closed\n")
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
