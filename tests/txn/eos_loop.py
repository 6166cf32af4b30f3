"""A consume-transform-produce loop with confluent-kafka, exactly-once: run by tests/txn/test_eos_loop.py.

    python eos_loop.py BOOTSTRAP INPUT OUTPUT GROUP TRANSACTIONAL_ID

Reads INPUT in a consumer group (static membership, so that a restarted loop takes its place at once), and
for each batch, in one transaction: writes every record transformed to OUTPUT (same partition, value
"out-" + value) and sends the consumer's positions with send_offsets_to_transaction. A restart under the same
transactional.id fences the previous incarnation and aborts its open transaction; the consumer resumes at the
committed offsets. Prints a JSON line per committed transaction: {"committed": transactions so far, "records": N}.
Runs until killed (SIGTERM: a clean stop).
"""

from __future__ import annotations

import faulthandler
import json
import signal
import sys

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer

BATCH = 20


def main(bootstrap: str, input_topic: str, output_topic: str, group: str, transactional_id: str) -> int:
    faulthandler.register(signal.SIGUSR1)  # kill -USR1: where it is stuck, on stderr
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id, "linger.ms": 2,
                         "transaction.timeout.ms": 10000})
    producer.init_transactions(60)  # fences the previous incarnation first
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "group.instance.id": f"{group}-member",
                         "session.timeout.ms": 10000, "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed", "fetch.wait.max.ms": 100})
    consumer.subscribe([input_topic])
    transactions = records = 0
    try:
        while not stopping:
            batch = [m for m in consumer.consume(BATCH, 0.5) if not m.error()]
            if not batch:
                continue
            producer.begin_transaction()
            for m in batch:
                producer.produce(output_topic, key=m.key(), value=b"out-" + m.value(), partition=m.partition())
            try:
                producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                                     consumer.consumer_group_metadata(), 30)
                producer.commit_transaction(30)
            except KafkaException as e:
                if not e.args[0].txn_requires_abort():
                    raise
                producer.abort_transaction(30)
                # processed again from the committed offsets
                for tp in consumer.committed(consumer.assignment(), 30):
                    tp.offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
                    consumer.seek(tp)
                print(json.dumps({"aborted": str(e)}), flush=True)
                continue
            transactions += 1
            records += len(batch)
            print(json.dumps({"committed": transactions, "records": records}), flush=True)
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:6]))
