package kafkalite.interop;

import java.util.Arrays;

/**
 * The Java side of tests/interop/test_java_client.py and test_kafka_streams.py: one program, a subcommand each.
 *
 * <pre>
 *   produce  BOOTSTRAP TOPIC                  every codec x acks/idempotence, then reads it all back
 *   member   BOOTSTRAP TOPIC GROUP [options]  one consumer-group member, until SIGTERM (see GroupMember)
 *   admin    BOOTSTRAP PREFIX                 every Admin call kafkalite supports, on topics/groups named PREFIX-*
 *   wordcount BOOTSTRAP APP_ID STATE_DIR INPUT OUTPUT   a Kafka Streams word count, until SIGTERM
 *                                             (--guarantee exactly_once_v2 for exactly-once)
 *   txn      BOOTSTRAP PREFIX                 transactional producers and read_committed consumers (see TxnCheck)
 *   warmup                                    builds every kind of client, connecting nowhere, and exits:
 *                                             run with -XX:ArchiveClassesAtExit, it records the class-data
 *                                             archive that makes the other runs start faster
 * </pre>
 *
 * Every result is a JSON line on stdout (see Out); Kafka's own logs go to stderr.
 */
public final class Driver {
    private Driver() {}

    private static void warmup() throws Exception {
        String nowhere = "127.0.0.1:9";
        java.util.Properties props = new java.util.Properties();
        props.put("bootstrap.servers", nowhere);
        var serializer = new org.apache.kafka.common.serialization.StringSerializer();
        var deserializer = new org.apache.kafka.common.serialization.StringDeserializer();
        new org.apache.kafka.clients.producer.KafkaProducer<>(props, serializer, serializer).close();
        new org.apache.kafka.clients.consumer.KafkaConsumer<>(props, deserializer, deserializer).close();
        org.apache.kafka.clients.admin.Admin.create(props).close(java.time.Duration.ZERO);
        java.nio.file.Path state = java.nio.file.Files.createTempDirectory("kafkalite-warmup");
        WordCount.build(nowhere, "warmup", state.toString(), "in", "out").close();
        Out.emit("warm");
    }

    public static void main(String[] argv) throws Exception {
        if (argv.length == 0) {
            System.err.println("usage: Driver produce|member|admin|wordcount|txn ARGS...");
            System.exit(2);
        }
        Args args = new Args(Arrays.copyOfRange(argv, 1, argv.length));
        switch (argv[0]) {
            case "produce" -> ProduceCheck.run(args);
            case "member" -> GroupMember.run(args);
            case "admin" -> AdminCheck.run(args);
            case "wordcount" -> WordCount.run(args);
            case "fault-produce" -> FaultProducer.run(args);
            case "txn" -> TxnCheck.run(args);
            case "warmup" -> warmup();
            default -> {
                System.err.println("unknown subcommand " + argv[0]);
                System.exit(2);
            }
        }
    }
}
