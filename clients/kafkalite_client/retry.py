"""Retries and dead letters for `Consumer.run`, which Kafka leaves to every application.

When the handler raises, the record is republished (same key, value and headers) to `<topic>.retry` with
headers saying how many attempts failed, why, where it came from and when it may be tried again; after
`max_attempts` failed attempts it goes to `<topic>.dlq` instead. The consumer subscribes to the retry
topics itself and holds back (pauses the partition of) a retry record until it is due. Its offset counts
as handled only once the republished copy is acknowledged, so a crash in between repeats, never loses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kafkalite_client.records import ConsumerRecord

ATTEMPT_HEADER = "kafkalite-retry-attempt"  # attempts that failed so far, as decimal ASCII
ERROR_HEADER = "kafkalite-retry-error"  # "ExceptionType: message" of the last failure
ORIGINAL_TOPIC_HEADER = "kafkalite-retry-original-topic"
ORIGINAL_PARTITION_HEADER = "kafkalite-retry-original-partition"
ORIGINAL_OFFSET_HEADER = "kafkalite-retry-original-offset"
NOT_BEFORE_HEADER = "kafkalite-retry-not-before"  # epoch milliseconds
_OURS = {ATTEMPT_HEADER, ERROR_HEADER, ORIGINAL_TOPIC_HEADER, ORIGINAL_PARTITION_HEADER, ORIGINAL_OFFSET_HEADER,
         NOT_BEFORE_HEADER}
_MAX_ERROR_TEXT = 1000


@dataclass
class RetryPolicy:
    max_attempts: int = 3  # handler attempts in all; the last failure sends the record to the DLQ
    backoff_ms: float = 1000  # before the second attempt ...
    backoff_multiplier: float = 2.0  # ... growing by this factor per attempt ...
    max_backoff_ms: float = 60000  # ... up to this
    retry_suffix: str = ".retry"
    dlq_suffix: str = ".dlq"
    create_topics: bool = True  # create the retry and DLQ topics (as many partitions as the source) at start

    def __post_init__(self):
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def retry_topic(self, topic: str) -> str:
        return topic + self.retry_suffix

    def dlq_topic(self, topic: str) -> str:
        return topic + self.dlq_suffix

    def backoff(self, failed_attempts: int) -> float:
        """Seconds to wait before the next attempt, after this many failures."""
        ms = self.backoff_ms * self.backoff_multiplier ** (failed_attempts - 1)
        return min(ms, self.max_backoff_ms) / 1000


def _int_header(record: ConsumerRecord, name: str, default: int) -> int:
    raw = record.header(name)
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default


class RetryRouter:
    """Parks failed records on retry / dead-letter topics with the consumer's own producer."""

    def __init__(self, policy: RetryPolicy, bootstrap_servers, cluster):
        self.policy = policy
        self._bootstrap_servers = bootstrap_servers
        self._cluster = cluster
        self._producer = None

    async def prepare_topics(self, topics) -> None:
        if not self.policy.create_topics:
            return
        from kafkalite_client.admin import Admin, NewTopic

        admin = Admin(cluster=self._cluster)
        new = []
        for topic in topics:
            count = len((await self._cluster.topic(topic)).partitions)
            new += [NewTopic(self.policy.retry_topic(topic), count), NewTopic(self.policy.dlq_topic(topic), count)]
        await admin.create_topics(new, if_not_exists=True)
        await self._cluster.refresh()

    def delay_before(self, record: ConsumerRecord) -> float:
        """Seconds until a retry record is due (0 for any other record)."""
        not_before = _int_header(record, NOT_BEFORE_HEADER, 0)
        if not not_before:
            return 0.0
        return max(0.0, (not_before - time.time() * 1000) / 1000)

    async def park(self, record: ConsumerRecord, error: BaseException) -> str:
        """Republish a record whose handler failed; returns the topic it went to."""
        if self._producer is None:
            from kafkalite_client.producer import Producer

            self._producer = await Producer(self._bootstrap_servers, client_id="kafkalite-retry",
                                            linger_ms=0).start()
        failed = _int_header(record, ATTEMPT_HEADER, 0) + 1
        original = record.header(ORIGINAL_TOPIC_HEADER)
        if original is not None:
            origin_topic = original.decode("utf-8", "replace")
            origin_partition = record.header(ORIGINAL_PARTITION_HEADER) or b"-1"
            origin_offset = record.header(ORIGINAL_OFFSET_HEADER) or b"-1"
        else:
            origin_topic = record.topic
            origin_partition = str(record.partition).encode()
            origin_offset = str(record.offset).encode()
        headers = [(k, v) for k, v in record.headers if k not in _OURS]
        headers += [
            (ATTEMPT_HEADER, str(failed).encode()),
            (ERROR_HEADER, f"{type(error).__name__}: {error}"[:_MAX_ERROR_TEXT].encode("utf-8", "replace")),
            (ORIGINAL_TOPIC_HEADER, origin_topic.encode()),
            (ORIGINAL_PARTITION_HEADER, origin_partition),
            (ORIGINAL_OFFSET_HEADER, origin_offset),
        ]
        if failed >= self.policy.max_attempts:
            target = self.policy.dlq_topic(origin_topic)
        else:
            target = self.policy.retry_topic(origin_topic)
            not_before = int(time.time() * 1000 + self.policy.backoff(failed) * 1000)
            headers.append((NOT_BEFORE_HEADER, str(not_before).encode()))
        await self._producer.send(target, record.value, key=record.key, headers=headers)
        return target

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.close()
