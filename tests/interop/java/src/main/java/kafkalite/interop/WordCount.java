package kafkalite.interop;

import java.time.Duration;
import java.util.Arrays;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.StateRestoreListener;

/**
 * wordcount BOOTSTRAP APP_ID STATE_DIR INPUT OUTPUT [--max-seconds N] [--guarantee at_least_once|exactly_once_v2]:
 * Kafka Streams, at_least_once unless told otherwise.
 * Lines of INPUT are split into lower-case words, re-keyed by word (groupBy: through the repartition topic
 * APP_ID-words-repartition) and counted in the state store "counts" (RocksDB, changelog APP_ID-counts-changelog);
 * every new count goes to OUTPUT as word -> count (record cache off, so every update is sent). Events:
 *
 * <pre>
 *   {"event": "state", "state": "RUNNING", "previous": "REBALANCING"}
 *   {"event": "restore_start", "store": "counts", "topic", "partition", "start": offset, "end": offset}
 *   {"event": "restored", "store": "counts", "topic", "partition", "records": N}   at the end of a restore
 *   {"event": "uncaught", "error": "..."}          a stream thread died (the application then shuts down)
 *   {"event": "closed", "state": "NOT_RUNNING"}
 * </pre>
 * SIGTERM closes it cleanly (it commits what it processed).
 */
final class WordCount {
    private WordCount() {}

    static void run(Args args) throws Exception {
        KafkaStreams streams = build(args.at(0, "BOOTSTRAP"), args.at(1, "APP_ID"), args.at(2, "STATE_DIR"),
                args.at(3, "INPUT"), args.at(4, "OUTPUT"), args.option("guarantee", StreamsConfig.AT_LEAST_ONCE));
        CountDownLatch stop = new CountDownLatch(1);
        report(streams, stop);
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stop.countDown();
            try {
                closed.await(30, TimeUnit.SECONDS);
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
        }));
        streams.start();
        stop.await(args.intOption("max-seconds", 120), TimeUnit.SECONDS);
        streams.close(Duration.ofSeconds(20));
        Out.emit("closed", "state", streams.state().name());
        closed.countDown();
    }

    static KafkaStreams build(String bootstrap, String appId, String stateDir, String input, String output) {
        return build(bootstrap, appId, stateDir, input, output, StreamsConfig.AT_LEAST_ONCE);
    }

    static KafkaStreams build(String bootstrap, String appId, String stateDir, String input, String output,
                              String guarantee) {
        Properties props = new Properties();
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        // exactly_once_v2: a transaction left open by a killed instance is aborted after this long
        props.put(StreamsConfig.producerPrefix("transaction.timeout.ms"), 10000);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        props.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, 500);
        props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        props.put(StreamsConfig.consumerPrefix("session.timeout.ms"), 6000);
        props.put(StreamsConfig.consumerPrefix("heartbeat.interval.ms"), 1000);
        props.put(StreamsConfig.consumerPrefix("fetch.max.wait.ms"), 100);
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        return new KafkaStreams(topology(input, output), props);
    }

    static Topology topology(String input, String output) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(line -> Arrays.asList(line.toLowerCase(Locale.ROOT).split("\\W+")))
                .filter((key, word) -> !word.isEmpty())
                .groupBy((key, word) -> word, Grouped.with("words", Serdes.String(), Serdes.String()))
                .count(Materialized.as("counts"))
                .toStream()
                .to(output, Produced.with(Serdes.String(), Serdes.Long()));
        return builder.build();
    }

    /** Prints the state changes and restores; `stop` is released when the application fails. */
    private static void report(KafkaStreams streams, CountDownLatch stop) {
        streams.setStateListener((now, before) -> {
            Out.emit("state", "state", now.name(), "previous", before.name());
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.PENDING_ERROR) {
                stop.countDown();
            }
        });
        streams.setGlobalStateRestoreListener(new StateRestoreListener() {
            @Override
            public void onRestoreStart(TopicPartition tp, String store, long start, long end) {
                Out.emit("restore_start", "store", store, "topic", tp.topic(), "partition", tp.partition(),
                        "start", start, "end", end);
            }

            @Override
            public void onBatchRestored(TopicPartition tp, String store, long batchEnd, long records) {}

            @Override
            public void onRestoreEnd(TopicPartition tp, String store, long records) {
                Out.emit("restored", "store", store, "topic", tp.topic(), "partition", tp.partition(),
                        "records", records);
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            Out.emit("uncaught", "error", e.toString());
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
    }
}
