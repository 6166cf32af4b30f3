// One consumer-group member on kafkajs: the node twin of tests/interop/group_member.py (same
// arguments, same JSON event lines; see that file's docstring).
//   node group_member.js BOOTSTRAP TOPIC GROUP [--session-ms N] [--heartbeat-ms N] [--max-seconds N]
//                        [--no-commit] [--client-id ID]
// It commits, synchronously, the offset after the last message of each batch it reads.
// SIGTERM: commit and leave the group cleanly; kill -9: a crash.
const { Kafka, logLevel } = require('kafkajs');

const args = process.argv.slice(2);
const [bootstrap, topic, group] = args;
function option(name, fallback) {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
}
const sessionMs = option('--session-ms', 6000);
const heartbeatMs = option('--heartbeat-ms', 1000);
const maxSeconds = option('--max-seconds', 120);
const commit = !args.includes('--no-commit');
const clientIdIndex = args.indexOf('--client-id');
const clientId = clientIdIndex >= 0 ? args[clientIdIndex + 1] : 'group-member';

function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ t: Date.now() / 1000, event, ...fields }) + '\n');
}

const kafka = new Kafka({ clientId, brokers: [bootstrap], logLevel: logLevel.NOTHING,
                          retry: { retries: 20, initialRetryTime: 100, maxRetryTime: 1000 } });
// 0: kafkajs's default (session 30 s, heartbeat 3 s, rebalance timeout 60 s)
const timeouts = {};
if (sessionMs > 0) Object.assign(timeouts, { sessionTimeout: sessionMs, rebalanceTimeout: Math.max(sessionMs, 10000) });
if (heartbeatMs > 0) timeouts.heartbeatInterval = heartbeatMs;
const consumer = kafka.consumer({ groupId: group, ...timeouts, maxWaitTimeInMs: 100, metadataMaxAge: 2000,
                                  retry: { retries: 20, initialRetryTime: 100 } });
let owned = new Set();

consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
  const now = new Set((payload.memberAssignment[topic] || []).map(Number));
  const gone = [...owned].filter(p => !now.has(p));
  if (gone.length) emit('revoked', { partitions: gone.sort((a, b) => a - b) });
  owned = now;
  emit('assigned', { partitions: [...owned].sort((a, b) => a - b) });
});

// kafkajs has no revocation callback: this marks the start of a rejoin (the Python members' "revoked").
consumer.on(consumer.events.REBALANCING, () => emit('rebalancing'));

let closing = false;
async function close() {
  if (closing) return;
  closing = true;
  try { await consumer.disconnect(); } catch (e) { /* leaving is best effort */ }
  emit('closed');
  process.exit(0);
}

(async () => {
  await consumer.connect();
  emit('started');
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
      let last = null;
      for (const message of batch.messages) {
        if (!isRunning() || isStale()) break;
        emit('consumed', { partition: batch.partition, offset: Number(message.offset),
                           value: message.value ? message.value.toString() : '' });
        resolveOffset(message.offset);
        last = Number(message.offset);
      }
      if (commit && last !== null) {
        const next = String(last + 1);
        try {
          await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }]);
          emit('committed', { offsets: { [batch.partition]: last + 1 } });
        } catch (e) {
          emit('commit_failed', { error: String(e && e.type || e) });
        }
      }
      await heartbeat();
    },
  });
  setTimeout(close, maxSeconds * 1000).unref();
})().catch(e => { console.error(e.stack || String(e)); process.exit(1); });

process.on('SIGTERM', close);
