package kafkalite.interop;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * admin BOOTSTRAP PREFIX: every Admin call kafkalite supports, in order, on topics PREFIX-a (3 partitions),
 * PREFIX-b (1, grown to 4), PREFIX-del (deleted again) and groups PREFIX-g1 (a subscribed member, then empty),
 * PREFIX-g2 (offsets committed by an assign-only consumer; deleted). Each step prints what it observed as
 * {"event": STEP, ...}; a step that throws prints {"event": "error", "step": STEP, "error": "..."} and the
 * run goes on. The Python test holds the expectations.
 */
final class AdminCheck {
    /** The produce timestamps of PREFIX-b partition 0: offset i at BASE + i s, but offset 6 far later. */
    static final long BASE_TS = 1_700_000_000_000L;
    static final int TS_RECORDS = 10;
    static final int MAX_TS_OFFSET = 6;

    private final Admin admin;
    private final String bootstrap;
    private final String a;
    private final String b;
    private final String del;
    private final String g1;
    private final String g2;

    private AdminCheck(Admin admin, String bootstrap, String prefix) {
        this.admin = admin;
        this.bootstrap = bootstrap;
        this.a = prefix + "-a";
        this.b = prefix + "-b";
        this.del = prefix + "-del";
        this.g1 = prefix + "-g1";
        this.g2 = prefix + "-g2";
    }

    interface Step {
        void run() throws Exception;
    }

    static void run(Args args) throws Exception {
        String bootstrap = args.at(0, "BOOTSTRAP");
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 20000);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 10000);
        try (Admin admin = Admin.create(props)) {
            new AdminCheck(admin, bootstrap, args.at(1, "PREFIX")).steps();
        }
        Out.emit("done");
    }

    private static void step(String name, Step step) {
        try {
            step.run();
        } catch (Exception e) {
            Out.emit("error", "step", name, "error", Out.errorName(e) + ": " + e.getMessage());
        }
    }

    /** The class name of the error `step` fails with, or "none". */
    private static String failure(Step step) {
        try {
            step.run();
            return "none";
        } catch (Exception e) {
            return Out.errorName(e);
        }
    }

    private void steps() throws Exception {
        step("create_topics", this::createTopics);
        step("list_topics", () -> Out.emit("list_topics", "topics", topics()));
        step("describe_topics", () -> Out.emit("describe_topics", "topics", describe(List.of(a, b))));
        step("create_partitions", this::createPartitions);
        step("describe_configs", () -> Out.emit("describe_configs", "topic", topicConfigs(a),
                "broker", brokerConfigs()));
        step("incremental_alter_configs", this::incrementalAlterConfigs);
        step("compacted_needs_keys", this::compactedNeedsKeys);
        step("list_offsets", this::listOffsets);
        step("delete_records", this::deleteRecords);
        step("describe_cluster", this::describeCluster);
        step("consumer_groups", this::consumerGroups);
        step("delete_topics", this::deleteTopics);
    }

    private void createTopics() throws Exception {
        CreateTopicsResult created = admin.createTopics(List.of(
                new NewTopic(a, 3, (short) 1).configs(Map.of("retention.ms", "3600000", "cleanup.policy", "delete")),
                new NewTopic(b, 1, (short) 1),
                new NewTopic(del, 2, (short) 1)));
        created.all().get();
        Map<String, Object> seen = new TreeMap<>();
        for (String topic : List.of(a, b, del)) {
            Config config = created.config(topic).get();
            seen.put(topic, Map.of("partitions", created.numPartitions(topic).get(),
                    "replication", created.replicationFactor(topic).get(),
                    "retention.ms", config.get("retention.ms").value()));
        }
        String validateOnly = a + "-validate-only";
        admin.createTopics(List.of(new NewTopic(validateOnly, 2, (short) 1)),
                new CreateTopicsOptions().validateOnly(true)).all().get();
        Out.emit("create_topics", "created", seen, "validate_only_listed", topics().contains(validateOnly),
                "again", failure(() -> admin.createTopics(List.of(new NewTopic(a, 3, (short) 1))).all().get()),
                "bad_replication", failure(() -> admin.createTopics(
                        List.of(new NewTopic(a + "-rf3", 1, (short) 3))).all().get()));
    }

    private Set<String> topics() throws Exception {
        return new TreeSet<>(admin.listTopics(new ListTopicsOptions().listInternal(false)).names().get());
    }

    private Map<String, Object> describe(Collection<String> names) throws Exception {
        Map<String, Object> seen = new TreeMap<>();
        for (TopicDescription d : admin.describeTopics(names).allTopicNames().get().values()) {
            List<Object> partitions = new ArrayList<>();
            for (TopicPartitionInfo p : d.partitions()) {
                partitions.add(Map.of("partition", p.partition(), "leader", p.leader().id(),
                        "replicas", p.replicas().stream().map(Node::id).toList(),
                        "isr", p.isr().stream().map(Node::id).toList()));
            }
            seen.put(d.name(), Map.of("internal", d.isInternal(), "partitions", partitions,
                    "topic_id", d.topicId().toString()));
        }
        return seen;
    }

    private void createPartitions() throws Exception {
        admin.createPartitions(Map.of(b, NewPartitions.increaseTo(4))).all().get();
        Out.emit("create_partitions", "b_partitions", admin.describeTopics(List.of(b)).allTopicNames().get()
                        .get(b).partitions().size(),
                "decrease", failure(() -> admin.createPartitions(Map.of(b, NewPartitions.increaseTo(2))).all().get()),
                "unknown_topic", failure(() -> admin.createPartitions(
                        Map.of(b + "-missing", NewPartitions.increaseTo(2))).all().get()));
    }

    private Map<String, Object> topicConfigs(String topic) throws Exception {
        ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Config config = admin.describeConfigs(List.of(resource)).all().get().get(resource);
        Map<String, Object> seen = new TreeMap<>();
        for (ConfigEntry e : config.entries()) {
            Map<String, Object> entry = new LinkedHashMap<>();
            entry.put("value", e.value());
            entry.put("source", e.source().name());
            entry.put("default", e.isDefault());
            entry.put("read_only", e.isReadOnly());
            entry.put("sensitive", e.isSensitive());
            seen.put(e.name(), entry);
        }
        return seen;
    }

    private Map<String, Object> brokerConfigs() throws Exception {
        ConfigResource resource = new ConfigResource(ConfigResource.Type.BROKER, "0");
        Config config = admin.describeConfigs(List.of(resource)).all().get().get(resource);
        Map<String, Object> seen = new TreeMap<>();
        for (ConfigEntry e : config.entries()) {
            seen.put(e.name(), Map.of("value", String.valueOf(e.value()), "source", e.source().name()));
        }
        return seen;
    }

    private void incrementalAlterConfigs() throws Exception {
        ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, a);
        admin.incrementalAlterConfigs(Map.of(resource, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("max.message.bytes", "2000000"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.APPEND))))
                .all().get();
        Map<String, Object> afterSet = topicConfigs(a);
        admin.incrementalAlterConfigs(Map.of(resource, List.of(
                new AlterConfigOp(new ConfigEntry("max.message.bytes", ""), AlterConfigOp.OpType.DELETE),
                new AlterConfigOp(new ConfigEntry("cleanup.policy", "delete"), AlterConfigOp.OpType.SUBTRACT))))
                .all().get();
        Out.emit("incremental_alter_configs", "after_set", pick(afterSet), "after_delete", pick(topicConfigs(a)),
                "unknown_config", failure(() -> admin.incrementalAlterConfigs(Map.of(resource, List.of(
                        new AlterConfigOp(new ConfigEntry("no.such.config", "1"), AlterConfigOp.OpType.SET))))
                        .all().get()),
                "bad_value", failure(() -> admin.incrementalAlterConfigs(Map.of(resource, List.of(
                        new AlterConfigOp(new ConfigEntry("retention.ms", "not-a-number"),
                                AlterConfigOp.OpType.SET)))).all().get()));
    }

    /** PREFIX-a is compacted now (cleanup.policy=compact): a record without a key is refused, a keyed one stored. */
    private void compactedNeedsKeys() throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.RETRIES_CONFIG, 0);
        try (KafkaProducer<String, String> producer =
                     new KafkaProducer<>(props, new StringSerializer(), new StringSerializer())) {
            Out.emit("compacted_needs_keys",
                    "unkeyed", failure(() -> producer.send(new ProducerRecord<>(a, 0, null, "no key")).get()),
                    "keyed_offset", producer.send(new ProducerRecord<>(a, 0, "key", "keyed")).get().offset());
        }
    }

    private static Map<String, Object> pick(Map<String, Object> configs) {
        Map<String, Object> picked = new TreeMap<>();
        for (String name : List.of("retention.ms", "max.message.bytes", "cleanup.policy")) {
            picked.put(name, configs.get(name));
        }
        return picked;
    }

    private void listOffsets() throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (KafkaProducer<String, String> producer =
                     new KafkaProducer<>(props, new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < TS_RECORDS; i++) {
                long ts = i == MAX_TS_OFFSET ? BASE_TS + 1_000_000 : BASE_TS + i * 1000L;
                producer.send(new ProducerRecord<>(b, 0, ts, "k" + i, "v" + i)).get();
            }
        }
        TopicPartition tp = new TopicPartition(b, 0);
        Map<String, OffsetSpec> specs = new LinkedHashMap<>();
        specs.put("earliest", OffsetSpec.earliest());
        specs.put("latest", OffsetSpec.latest());
        specs.put("for_timestamp", OffsetSpec.forTimestamp(BASE_TS + 2500));
        specs.put("for_timestamp_exact", OffsetSpec.forTimestamp(BASE_TS + 3000));
        specs.put("for_timestamp_after_all", OffsetSpec.forTimestamp(BASE_TS + 2_000_000));
        specs.put("max_timestamp", OffsetSpec.maxTimestamp());
        Map<String, Object> seen = new LinkedHashMap<>();
        for (Map.Entry<String, OffsetSpec> spec : specs.entrySet()) {
            ListOffsetsResult.ListOffsetsResultInfo info =
                    admin.listOffsets(Map.of(tp, spec.getValue())).partitionResult(tp).get();
            seen.put(spec.getKey(), Map.of("offset", info.offset(), "timestamp", info.timestamp()));
        }
        Out.emit("list_offsets", "results", seen, "base_timestamp", BASE_TS);
    }

    private void deleteRecords() throws Exception {
        TopicPartition tp = new TopicPartition(b, 0);
        long low = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(4))).lowWatermarks().get(tp).get()
                .lowWatermark();
        long earliest = admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).partitionResult(tp).get().offset();
        Out.emit("delete_records", "low_watermark", low, "earliest_after", earliest,
                "beyond_high_watermark", failure(() -> admin.deleteRecords(
                        Map.of(tp, RecordsToDelete.beforeOffset(1000))).all().get()));
    }

    private void describeCluster() throws Exception {
        DescribeClusterResult cluster = admin.describeCluster();
        List<Object> nodes = new ArrayList<>();
        for (Node n : cluster.nodes().get()) {
            nodes.add(Map.of("id", n.id(), "host", n.host(), "port", n.port()));
        }
        Out.emit("describe_cluster", "cluster_id", cluster.clusterId().get(), "controller",
                cluster.controller().get().id(), "nodes", nodes);
    }

    private KafkaConsumer<String, String> consumer(String group) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, group + "-client");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        props.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 6000);
        props.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 1000);
        return new KafkaConsumer<>(props, new StringDeserializer(), new StringDeserializer());
    }

    private Map<String, Long> groupOffsets(String group) throws Exception {
        Map<String, Long> seen = new TreeMap<>();
        admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get().forEach(
                (tp, om) -> seen.put(tp.toString(), om == null ? null : om.offset()));
        return seen;
    }

    private Map<String, Object> describeGroup(String group) throws Exception {
        ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).all().get().get(group);
        List<Object> members = new ArrayList<>();
        for (MemberDescription m : d.members()) {
            members.add(Map.of("client_id", m.clientId(), "partitions",
                    m.assignment().topicPartitions().stream().map(TopicPartition::toString).sorted().toList()));
        }
        Map<String, Object> seen = new LinkedHashMap<>();
        seen.put("state", d.groupState().toString());
        seen.put("assignor", d.partitionAssignor());
        seen.put("simple", d.isSimpleConsumerGroup());
        seen.put("coordinator", d.coordinator().id());
        seen.put("members", members);
        return seen;
    }

    private Map<String, Object> listGroups() throws Exception {
        Map<String, Object> seen = new TreeMap<>();
        @SuppressWarnings("deprecation")
        Collection<ConsumerGroupListing> listed = admin.listConsumerGroups().all().get();
        for (ConsumerGroupListing g : listed) {
            seen.put(g.groupId(), g.groupState().map(Object::toString).orElse("?"));
        }
        return seen;
    }

    private void consumerGroups() throws Exception {
        // PREFIX-g1: a member subscribed to PREFIX-a reads the 10 records there and commits.
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (KafkaProducer<String, String> producer =
                     new KafkaProducer<>(props, new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < 9; i++) {
                producer.send(new ProducerRecord<>(a, i % 3, "g" + i, "g" + i)).get();
            }
        }
        Map<String, Object> whileActive = new LinkedHashMap<>();
        try (KafkaConsumer<String, String> member = consumer(g1)) {
            member.subscribe(List.of(a));
            int read = 0;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (read < 10 && System.nanoTime() < deadline) {
                read += member.poll(Duration.ofMillis(200)).count();
            }
            member.commitSync();
            whileActive.put("read", read);
            whileActive.put("describe", describeGroup(g1));
            whileActive.put("delete_offsets_subscribed", failure(() -> admin.deleteConsumerGroupOffsets(g1,
                    Set.of(new TopicPartition(a, 0))).all().get()));
            whileActive.put("alter_offsets_active", failure(() -> admin.alterConsumerGroupOffsets(g1,
                    Map.of(new TopicPartition(a, 0), new OffsetAndMetadata(0))).all().get()));
            whileActive.put("delete_group_active", failure(() -> admin.deleteConsumerGroups(List.of(g1)).all().get()));
        }
        // PREFIX-g2: offsets committed by an assign-only consumer (a group with no members).
        try (KafkaConsumer<String, String> simple = consumer(g2)) {
            simple.assign(List.of(new TopicPartition(a, 1)));
            simple.commitSync(Map.of(new TopicPartition(a, 1), new OffsetAndMetadata(2, "from-java")));
        }
        Map<String, Object> listedGroups = listGroups();
        Map<String, Object> groupTypes = new TreeMap<>();
        for (GroupListing g : admin.listGroups().all().get()) {
            groupTypes.put(g.groupId(), Map.of("type", g.type().map(Object::toString).orElse("?"),
                    "protocol", g.protocol(), "state", g.groupState().map(Object::toString).orElse("?")));
        }
        Map<String, Object> afterLeave = describeGroup(g1);
        Map<String, Long> committed = groupOffsets(g1);
        Map<String, Long> committedG2 = groupOffsets(g2);

        // Offset reset (what kafka-consumer-groups --reset-offsets does): PREFIX-a-0 back to 0.
        admin.alterConsumerGroupOffsets(g1, Map.of(new TopicPartition(a, 0), new OffsetAndMetadata(0))).all().get();
        Map<String, Long> afterReset = groupOffsets(g1);
        admin.deleteConsumerGroupOffsets(g1, Set.of(new TopicPartition(a, 1))).all().get();
        Map<String, Long> afterDeleteOffsets = groupOffsets(g1);

        admin.deleteConsumerGroups(List.of(g2)).all().get();
        Out.emit("consumer_groups", "while_active", whileActive, "list_consumer_groups", listedGroups,
                "list_groups", groupTypes, "after_leave", afterLeave, "committed", committed,
                "committed_g2", committedG2, "after_reset", afterReset, "after_delete_offsets", afterDeleteOffsets,
                "after_delete_group", listGroups(),
                "delete_missing_group", failure(() -> admin.deleteConsumerGroups(List.of(g2)).all().get()));
    }

    private void deleteTopics() throws Exception {
        admin.deleteTopics(List.of(del)).all().get();
        Out.emit("delete_topics", "listed_after", topics().contains(del),
                "again", failure(() -> admin.deleteTopics(List.of(del)).all().get()));
    }
}
