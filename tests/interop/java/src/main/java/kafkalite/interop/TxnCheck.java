package kafkalite.interop;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.TreeMap;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * txn BOOTSTRAP PREFIX: transactional producers, one scenario after another, on topics the caller created:
 * PREFIX-a (3 partitions), PREFIX-f (2), PREFIX-in and PREFIX-out (2 each; PREFIX-in holds 10 records).
 *
 * <pre>
 *   {"event": "committed"|"aborted", "values": [...]}            what a transaction sent before it ended
 *   {"event": "while_open", "lso": {p: offset}, "high": {p: offset}, "read": [...]}
 *        a read_committed consumer's end offsets (the last stable offsets) and everything it reads up to them,
 *        and a read_uncommitted consumer's end offsets, while a transaction is open on every partition
 *   {"event": "after_commit", "read": [...]}                     what that consumer reads once it commits
 *   {"event": "read_committed", "topic", "records": [{"partition", "offset", "value"}]}   a fresh read
 *   {"event": "fenced", "commit_error": name, "successor_committed": true}
 *   {"event": "offsets", "step", "committed": {p: offset}, "generation", "member_id"}
 *   {"event": "stale_generation", "error": name}
 *   {"event": "done"}
 * </pre>
 */
final class TxnCheck {
    private static final Duration TIMEOUT = Duration.ofSeconds(60);

    private TxnCheck() {}

    static void run(Args args) throws Exception {
        String bootstrap = args.at(0, "BOOTSTRAP");
        String prefix = args.at(1, "PREFIX");
        commitAbortAndOpen(bootstrap, prefix + "-a", 3);
        fencing(bootstrap, prefix + "-f");
        offsets(bootstrap, prefix + "-in", prefix + "-out", prefix + "-group");
        Out.emit("done");
    }

    static KafkaProducer<String, String> producer(String bootstrap, String transactionalId) {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.CLIENT_ID_CONFIG, transactionalId == null ? "plain" : transactionalId);
        props.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        if (transactionalId != null) {
            props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
            props.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 60000);
        }
        return new KafkaProducer<>(props, new StringSerializer(), new StringSerializer());
    }

    static KafkaConsumer<String, String> consumer(String bootstrap, String group, String isolation) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 100);
        if (group != null) {
            props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            props.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 6000);
            props.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 1000);
        }
        return new KafkaConsumer<>(props, new StringDeserializer(), new StringDeserializer());
    }

    static List<TopicPartition> partitions(String topic, int count) {
        List<TopicPartition> tps = new ArrayList<>();
        for (int p = 0; p < count; p++) {
            tps.add(new TopicPartition(topic, p));
        }
        return tps;
    }

    static Map<Integer, Long> byPartition(Map<TopicPartition, Long> offsets) {
        Map<Integer, Long> out = new TreeMap<>();
        offsets.forEach((tp, offset) -> out.put(tp.partition(), offset));
        return out;
    }

    /** Polls until the consumer's position reached `ends` on every partition; returns the values read. */
    static List<String> readTo(KafkaConsumer<String, String> consumer, Map<TopicPartition, Long> ends) {
        List<String> values = new ArrayList<>();
        long deadline = System.currentTimeMillis() + TIMEOUT.toMillis();
        while (ends.entrySet().stream().anyMatch(e -> consumer.position(e.getKey()) < e.getValue())) {
            if (System.currentTimeMillis() > deadline) {
                throw new IllegalStateException("did not reach " + ends + " (read " + values + ")");
            }
            for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                values.add(r.value());
            }
        }
        return values;
    }

    /** Polls until `count` more values came; returns them. */
    static List<ConsumerRecord<String, String>> readCount(KafkaConsumer<String, String> consumer, int count) {
        List<ConsumerRecord<String, String>> records = new ArrayList<>();
        long deadline = System.currentTimeMillis() + TIMEOUT.toMillis();
        while (records.size() < count) {
            if (System.currentTimeMillis() > deadline) {
                throw new IllegalStateException("read " + records.size() + " of " + count);
            }
            consumer.poll(Duration.ofMillis(200)).forEach(records::add);
        }
        return records;
    }

    static List<String> send(KafkaProducer<String, String> producer, String topic, int partitions, String prefix,
                             int count) throws Exception {
        List<String> values = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            values.add(prefix + "-" + i);
            producer.send(new ProducerRecord<>(topic, i % partitions, null, prefix + "-" + i));
        }
        producer.flush();
        return values;
    }

    /** Everything a fresh read_committed consumer reads from the start to the last stable offsets. */
    static void emitReadCommitted(String bootstrap, String topic, int partitionCount) {
        try (KafkaConsumer<String, String> reader = consumer(bootstrap, null, "read_committed")) {
            List<TopicPartition> tps = partitions(topic, partitionCount);
            reader.assign(tps);
            reader.seekToBeginning(tps);
            Map<TopicPartition, Long> ends = reader.endOffsets(tps);
            List<Map<String, Object>> records = new ArrayList<>();
            long deadline = System.currentTimeMillis() + TIMEOUT.toMillis();
            while (ends.entrySet().stream().anyMatch(e -> reader.position(e.getKey()) < e.getValue())) {
                if (System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException("read_committed reader did not reach " + ends);
                }
                for (ConsumerRecord<String, String> r : reader.poll(Duration.ofMillis(200))) {
                    records.add(Map.of("partition", r.partition(), "offset", r.offset(), "value", r.value()));
                }
            }
            Out.emit("read_committed", "topic", topic, "records", records);
        }
    }

    /** A commit and an abort across every partition, then a transaction left open while a read_committed
     * consumer reads: it must stop at the last stable offset, and go on once the transaction commits. */
    static void commitAbortAndOpen(String bootstrap, String topic, int partitionCount) throws Exception {
        List<TopicPartition> tps = partitions(topic, partitionCount);
        try (KafkaProducer<String, String> producer = producer(bootstrap, topic + "-txn")) {
            producer.initTransactions();
            producer.beginTransaction();
            List<String> committed = send(producer, topic, partitionCount, "committed", 9);
            producer.commitTransaction();
            Out.emit("committed", "values", committed);

            producer.beginTransaction();
            List<String> aborted = send(producer, topic, partitionCount, "aborted", 6);
            producer.abortTransaction();
            Out.emit("aborted", "values", aborted);

            producer.beginTransaction();
            List<String> open = send(producer, topic, partitionCount, "open", 3);
            try (KafkaConsumer<String, String> committedReader = consumer(bootstrap, null, "read_committed");
                 KafkaConsumer<String, String> uncommittedReader = consumer(bootstrap, null, "read_uncommitted")) {
                committedReader.assign(tps);
                committedReader.seekToBeginning(tps);
                Map<TopicPartition, Long> lso = committedReader.endOffsets(tps);
                Map<TopicPartition, Long> high = uncommittedReader.endOffsets(tps);
                List<String> read = readTo(committedReader, lso);
                Out.emit("while_open", "lso", byPartition(lso), "high", byPartition(high), "read", read);
                producer.commitTransaction();
                List<String> after = new ArrayList<>();
                readCount(committedReader, open.size()).forEach(r -> after.add(r.value()));
                Out.emit("after_commit", "read", after);
            }
        }
        emitReadCommitted(bootstrap, topic, partitionCount);
    }

    /** A second producer with the same transactional.id fences the first, whose open transaction is aborted. */
    static void fencing(String bootstrap, String topic) throws Exception {
        try (KafkaProducer<String, String> zombie = producer(bootstrap, topic + "-txn")) {
            zombie.initTransactions();
            zombie.beginTransaction();
            send(zombie, topic, 2, "zombie", 2);
            try (KafkaProducer<String, String> successor = producer(bootstrap, topic + "-txn")) {
                successor.initTransactions();
                successor.beginTransaction();
                send(successor, topic, 2, "successor", 2);
                successor.commitTransaction();
            }
            String error = "none";
            try {
                zombie.commitTransaction();
            } catch (Exception e) {
                error = Out.errorName(e);
            }
            Out.emit("fenced", "commit_error", error, "successor_committed", true);
        }
        emitReadCommitted(bootstrap, topic, 2);
    }

    static Map<Integer, Long> committedOffsets(KafkaConsumer<String, String> consumer, Collection<TopicPartition> tps) {
        Map<Integer, Long> out = new TreeMap<>();
        consumer.committed(new java.util.HashSet<>(tps)).forEach(
                (tp, offset) -> out.put(tp.partition(), offset == null ? -1L : offset.offset()));
        return out;
    }

    static Map<TopicPartition, OffsetAndMetadata> positions(KafkaConsumer<String, String> consumer,
                                                            Collection<TopicPartition> tps) {
        Map<TopicPartition, OffsetAndMetadata> out = new HashMap<>();
        for (TopicPartition tp : tps) {
            out.put(tp, new OffsetAndMetadata(consumer.position(tp)));
        }
        return out;
    }

    /** Consume-transform-produce in a consumer group: sendOffsetsToTransaction with the group's metadata.
     * Commit (offsets 5/5), abort (8/8: the committed offsets stay), then the same records again and commit
     * (8/8); offsets with a made-up generation are refused. */
    static void offsets(String bootstrap, String input, String output, String group) throws Exception {
        List<TopicPartition> tps = partitions(input, 2);
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, group, "read_committed");
             KafkaProducer<String, String> producer = producer(bootstrap, output + "-txn")) {
            producer.initTransactions();
            consumer.subscribe(List.of(input));
            ConsumerGroupMetadata[] metadata = new ConsumerGroupMetadata[1];
            for (String step : List.of("commit", "abort", "retry")) {
                int count = step.equals("commit") ? 10 : 6;
                if (step.equals("abort")) {
                    try (KafkaProducer<String, String> plain = producer(bootstrap, null)) {
                        for (int i = 10; i < 16; i++) {
                            plain.send(new ProducerRecord<>(input, i % 2, null, "in-" + i));
                        }
                        plain.flush();
                    }
                }
                List<ConsumerRecord<String, String>> records = readCount(consumer, count);
                producer.beginTransaction();
                for (ConsumerRecord<String, String> r : records) {
                    producer.send(new ProducerRecord<>(output, r.partition(), null, "out-" + r.value()));
                }
                metadata[0] = consumer.groupMetadata();
                producer.sendOffsetsToTransaction(positions(consumer, tps), metadata[0]);
                if (step.equals("abort")) {
                    producer.abortTransaction();
                    // as an application does after an abort: back to the committed offsets, to process again
                    consumer.committed(new java.util.HashSet<>(tps)).forEach((tp, offset) -> consumer.seek(tp, offset));
                } else {
                    producer.commitTransaction();
                }
                Out.emit("offsets", "step", step, "read", records.size(), "committed", committedOffsets(consumer, tps),
                        "generation", metadata[0].generationId(), "member_id", metadata[0].memberId());
            }
            // A generation the group never had: TxnOffsetCommit is refused (ILLEGAL_GENERATION), the
            // transaction cannot commit and is aborted.
            ConsumerGroupMetadata stale = new ConsumerGroupMetadata(group, metadata[0].generationId() + 5,
                    metadata[0].memberId(), Optional.empty());
            producer.beginTransaction();
            producer.send(new ProducerRecord<>(output, 0, null, "out-stale"));
            String error = "none";
            try {
                producer.sendOffsetsToTransaction(positions(consumer, tps), stale);
                producer.commitTransaction();
            } catch (Exception e) {
                error = Out.errorName(e);
                producer.abortTransaction();
            }
            Out.emit("stale_generation", "error", error, "committed", committedOffsets(consumer, tps));
        }
        emitReadCommitted(bootstrap, output, 2);
    }
}
