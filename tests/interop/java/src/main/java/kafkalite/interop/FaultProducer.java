package kafkalite.interop;

import java.io.InputStream;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * fault-produce BOOTSTRAP TOPIC NAME PARTITIONS [--rate N]: one idempotent acks=all producer for the cluster
 * fault harness (tests/cluster_faults), sending the unique values NAME:SEQ to partition SEQ % PARTITIONS at N
 * records a second until its stdin closes; then it flushes, closes and exits.
 *
 * <pre>
 *   {"event": "acked", "value", "sent_ms", "partition", "offset"}
 *   {"event": "failed", "value", "sent_ms", "error"}
 *   {"event": "done", "sent": N}
 * </pre>
 */
final class FaultProducer {
    private FaultProducer() {}

    static void run(Args args) throws Exception {
        String bootstrap = args.at(0, "BOOTSTRAP");
        String topic = args.at(1, "TOPIC");
        String name = args.at(2, "NAME");
        int partitions = Integer.parseInt(args.at(3, "PARTITIONS"));
        int rate = args.intOption("rate", 50);
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
        props.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 120000);
        props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 5000);
        props.put(ProducerConfig.RETRY_BACKOFF_MS_CONFIG, 50);
        props.put(ProducerConfig.RETRY_BACKOFF_MAX_MS_CONFIG, 300);
        props.put(ProducerConfig.RECONNECT_BACKOFF_MS_CONFIG, 50);
        props.put(ProducerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, 300);
        props.put(ProducerConfig.METADATA_MAX_AGE_CONFIG, 1000);
        props.put(ProducerConfig.CLIENT_ID_CONFIG, "fault-" + name);
        AtomicBoolean stop = new AtomicBoolean();
        Thread watcher = new Thread(() -> {
            try {
                InputStream in = System.in;
                while (in.read() >= 0) {
                    // nothing is sent on stdin: only its end matters
                }
            } catch (java.io.IOException ignored) {
                // a broken pipe ends the run as its end would
            }
            stop.set(true);
        });
        watcher.setDaemon(true);
        watcher.start();
        long started = System.nanoTime();
        long seq = 0;
        try (KafkaProducer<String, String> producer =
                     new KafkaProducer<>(props, new StringSerializer(), new StringSerializer())) {
            while (!stop.get()) {
                long due = (System.nanoTime() - started) * rate / 1_000_000_000L;
                while (seq < due && !stop.get()) {
                    String value = name + ":" + seq;
                    int partition = (int) (seq % partitions);
                    long sentMs = System.currentTimeMillis();
                    producer.send(new ProducerRecord<>(topic, partition, null, value), (md, error) -> {
                        if (error != null) {
                            Out.emit("failed", "value", value, "sent_ms", sentMs, "error",
                                    Out.errorName(error) + ": " + error.getMessage());
                        } else {
                            Out.emit("acked", "value", value, "sent_ms", sentMs, "partition", md.partition(), "offset",
                                    md.hasOffset() ? md.offset() : -1);
                        }
                    });
                    seq++;
                }
                Thread.sleep(5);
            }
            producer.flush();
        }
        Out.emit("done", "sent", seq);
    }
}
