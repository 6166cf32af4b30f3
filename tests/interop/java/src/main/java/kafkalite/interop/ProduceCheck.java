package kafkalite.interop;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * produce BOOTSTRAP TOPIC [--per-producer N]: one producer per codec x (acks, idempotence), each sending N
 * records with keys (every sixth null) and headers (one with a null value), then reads the topic back.
 *
 * <pre>
 *   {"event": "acked", "codec", "acks", "idempotent", "seq", "key", "value", "partition", "offset", "timestamp"}
 *   {"event": "consumed", "partition", "offset", "key", "value", "headers": [[name, value-or-null]], "timestamp"}
 *   {"event": "done", "acked": N, "consumed": N}
 * </pre>
 * With acks=0 the producer learns no offset: "offset" is -1.
 */
final class ProduceCheck {
    static final String[] CODECS = {"none", "gzip", "snappy", "lz4", "zstd"};
    /** acks, enable.idempotence (idempotence needs acks=all). */
    static final Object[][] MODES = {{"all", true}, {"all", false}, {"1", false}, {"0", false}};

    private ProduceCheck() {}

    static void run(Args args) throws Exception {
        String bootstrap = args.at(0, "BOOTSTRAP");
        String topic = args.at(1, "TOPIC");
        int perProducer = args.intOption("per-producer", 30);
        int acked = 0;
        for (String codec : CODECS) {
            for (Object[] mode : MODES) {
                acked += produce(bootstrap, topic, codec, (String) mode[0], (Boolean) mode[1], perProducer);
            }
        }
        int consumed = readBack(bootstrap, topic);
        Out.emit("done", "acked", acked, "consumed", consumed);
    }

    static String key(int seq) {
        return seq % 6 == 5 ? null : "key-" + seq % 5;
    }

    private static int produce(String bootstrap, String topic, String codec, String acks, boolean idempotent,
                               int count) throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.ACKS_CONFIG, acks);
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, idempotent);
        props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        props.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        props.put(ProducerConfig.CLIENT_ID_CONFIG, "produce-" + codec + "-acks" + acks + (idempotent ? "-idem" : ""));
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        List<String> values = new ArrayList<>();
        try (KafkaProducer<String, String> producer =
                     new KafkaProducer<>(props, new StringSerializer(), new StringSerializer())) {
            for (int seq = 0; seq < count; seq++) {
                String value = codec + "/" + acks + "/" + idempotent + "/" + seq;
                RecordHeaders headers = new RecordHeaders();
                headers.add("codec", codec.getBytes(StandardCharsets.UTF_8));
                headers.add("seq", Integer.toString(seq).getBytes(StandardCharsets.UTF_8));
                if (seq % 3 == 0) {
                    headers.add("null-valued", null);
                }
                futures.add(producer.send(new ProducerRecord<>(topic, null, null, key(seq), value, headers)));
                values.add(value);
            }
            producer.flush();
            for (int seq = 0; seq < count; seq++) {
                RecordMetadata md = futures.get(seq).get();
                Out.emit("acked", "codec", codec, "acks", acks, "idempotent", idempotent, "seq", seq,
                        "key", key(seq), "value", values.get(seq), "partition", md.partition(),
                        "offset", md.hasOffset() ? md.offset() : -1, "timestamp", md.timestamp());
            }
        }
        return count;
    }

    private static int readBack(String bootstrap, String topic) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.CHECK_CRCS_CONFIG, true);
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, "produce-read-back");
        int consumed = 0;
        try (KafkaConsumer<String, String> consumer =
                     new KafkaConsumer<>(props, new StringDeserializer(), new StringDeserializer())) {
            List<TopicPartition> partitions = consumer.partitionsFor(topic).stream()
                    .map(info -> new TopicPartition(topic, info.partition())).collect(Collectors.toList());
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> end = new HashMap<>(consumer.endOffsets(partitions));
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (partitions.stream().anyMatch(tp -> consumer.position(tp) < end.get(tp))) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("read back timed out at " + consumed + " records");
                }
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    List<List<String>> headers = new ArrayList<>();
                    for (Header h : r.headers()) {
                        headers.add(java.util.Arrays.asList(h.key(),
                                h.value() == null ? null : new String(h.value(), StandardCharsets.UTF_8)));
                    }
                    Out.emit("consumed", "partition", r.partition(), "offset", r.offset(), "key", r.key(),
                            "value", r.value(), "headers", headers, "timestamp", r.timestamp());
                    consumed++;
                }
            }
        }
        return consumed;
    }
}
