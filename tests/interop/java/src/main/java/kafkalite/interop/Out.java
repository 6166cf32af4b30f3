package kafkalite.interop;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.LinkedHashMap;
import java.util.Map;

/** JSON event lines on stdout: {"t": seconds since the epoch, "event": NAME, ...fields}. */
final class Out {
    private static final ObjectMapper JSON = new ObjectMapper();

    private Out() {}

    /** fields alternate name, value. */
    static synchronized void emit(String event, Object... fields) {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("t", System.currentTimeMillis() / 1000.0);
        line.put("event", event);
        for (int i = 0; i + 1 < fields.length; i += 2) {
            line.put((String) fields[i], fields[i + 1]);
        }
        try {
            System.out.println(JSON.writeValueAsString(line));
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
        System.out.flush();
    }

    /** The root cause's class name, for checks on which Kafka error came back. */
    static String errorName(Throwable e) {
        while (e.getCause() != null && (e instanceof java.util.concurrent.ExecutionException
                || e instanceof java.util.concurrent.CompletionException)) {
            e = e.getCause();
        }
        return e.getClass().getSimpleName();
    }
}
