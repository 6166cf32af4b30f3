package kafkalite.interop;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * member BOOTSTRAP TOPIC GROUP [--assignor range|cooperative-sticky] [--instance-id ID] [--session-ms N]
 * [--heartbeat-ms N] [--client-id ID] [--max-seconds N]: a consumer-group member of the classic protocol.
 * It reads from the earliest offset where the group has no commit and after each poll commits (synchronously)
 * the offset after the last record it read of each partition. Events, as tests/interop/group_member.py's:
 *
 * <pre>
 *   {"event": "started"}
 *   {"event": "assigned", "partitions": [all owned], "added": [new ones], "generation": G, "member_id": M}
 *   {"event": "revoked", "partitions": [...]}      (eager: everything, before each rebalance)
 *   {"event": "lost", "partitions": [...]}
 *   {"event": "consumed", "partition", "offset", "value"}
 *   {"event": "committed", "offsets": {"0": 8}}    a commit the broker acknowledged
 *   {"event": "commit_failed", "error": "..."}
 *   {"event": "closed"}
 * </pre>
 * SIGTERM closes it cleanly (commit, then close: a dynamic member leaves the group, a static one does not).
 */
final class GroupMember {
    private GroupMember() {}

    static void run(Args args) throws Exception {
        String topic = args.at(1, "TOPIC");
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args.at(0, "BOOTSTRAP"));
        props.put(ConsumerConfig.GROUP_ID_CONFIG, args.at(2, "GROUP"));
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, args.option("client-id", "java-member"));
        props.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, args.intOption("session-ms", 6000));
        props.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, args.intOption("heartbeat-ms", 1000));
        String assignor = args.option("assignor", "range");
        props.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, switch (assignor) {
            case "range" -> RangeAssignor.class.getName();
            case "cooperative-sticky" -> CooperativeStickyAssignor.class.getName();
            default -> throw new IllegalArgumentException("unknown assignor " + assignor);
        });
        String instanceId = args.option("instance-id", null);
        if (instanceId != null) {
            props.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instanceId);
        }
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        props.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 100);
        props.put(ConsumerConfig.METADATA_MAX_AGE_CONFIG, 2000);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(args.intOption("max-seconds", 120));

        KafkaConsumer<String, String> consumer =
                new KafkaConsumer<>(props, new StringDeserializer(), new StringDeserializer());
        Member member = new Member(consumer);
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            member.stopping = true;
            consumer.wakeup();
            try {
                closed.await(30, TimeUnit.SECONDS);
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
        }));
        Out.emit("started");
        consumer.subscribe(List.of(topic), member);
        try {
            while (!member.stopping && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    Out.emit("consumed", "partition", r.partition(), "offset", r.offset(), "value", r.value());
                    member.pending.put(new TopicPartition(r.topic(), r.partition()), r.offset() + 1);
                }
                member.commit();
            }
        } catch (WakeupException stop) {
            // SIGTERM: commit what was read, then close.
        }
        member.commit();
        consumer.close();
        Out.emit("closed");
        closed.countDown();
    }

    /** The member's assignment and what it has read but not committed. */
    private static final class Member implements ConsumerRebalanceListener {
        final KafkaConsumer<String, String> consumer;
        final TreeSet<Integer> owned = new TreeSet<>();
        final Map<TopicPartition, Long> pending = new HashMap<>();
        volatile boolean stopping;

        Member(KafkaConsumer<String, String> consumer) {
            this.consumer = consumer;
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
            List<Integer> added = new ArrayList<>();
            partitions.forEach(tp -> added.add(tp.partition()));
            owned.addAll(added);
            Out.emit("assigned", "partitions", new ArrayList<>(owned), "added", new TreeSet<>(added),
                    "generation", consumer.groupMetadata().generationId(),
                    "member_id", consumer.groupMetadata().memberId());
        }

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            if (!partitions.isEmpty()) {
                forget("revoked", partitions);
            }
        }

        @Override
        public void onPartitionsLost(Collection<TopicPartition> partitions) {
            forget("lost", partitions);
        }

        private void forget(String event, Collection<TopicPartition> partitions) {
            TreeSet<Integer> gone = new TreeSet<>();
            for (TopicPartition tp : partitions) {
                gone.add(tp.partition());
                pending.remove(tp);
            }
            owned.removeAll(gone);
            Out.emit(event, "partitions", gone);
        }

        void commit() {
            if (pending.isEmpty()) {
                return;
            }
            Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
            pending.forEach((tp, offset) -> offsets.put(tp, new OffsetAndMetadata(offset)));
            pending.clear();
            try {
                consumer.commitSync(offsets);
            } catch (WakeupException e) {
                offsets.forEach((tp, om) -> pending.putIfAbsent(tp, om.offset()));
                throw e;
            } catch (KafkaException e) {
                Out.emit("commit_failed", "error", e.toString());
                offsets.forEach((tp, om) -> {
                    if (owned.contains(tp.partition())) {
                        pending.putIfAbsent(tp, om.offset());
                    }
                });
                return;
            }
            Map<String, Long> acked = new java.util.TreeMap<>();
            offsets.forEach((tp, om) -> acked.put(Integer.toString(tp.partition()), om.offset()));
            Out.emit("committed", "offsets", acked);
        }
    }
}
