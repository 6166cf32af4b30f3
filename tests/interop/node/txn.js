// kafkajs transactions against kafkalite (run by tests/interop/test_kafkajs_txn.py): a transactional producer's
// commit and abort across partitions, a transaction left open while a readUncommitted:false consumer reads,
// and sendOffsets committing a group's offsets with the transaction. Prints one JSON result line.
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, prefix] = process.argv.slice(2);
const kafka = new Kafka({ clientId: 'kafkalite-txn', brokers: [bootstrap], logLevel: logLevel.ERROR,
                          retry: { retries: 8, initialRetryTime: 100 } });
const TOPIC = `${prefix}-a`, INPUT = `${prefix}-in`, OUTPUT = `${prefix}-out`, GROUP = `${prefix}-group`;

function until(condition, what, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const check = () => {
      if (condition()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(check, 50);
    };
    check();
  });
}

async function sendAll(txn, topic, partitions, name, count) {
  const messages = [];
  for (let i = 0; i < count; i++) messages.push({ partition: i % partitions, value: `${name}-${i}` });
  await txn.send({ topic, messages });
  return messages.map(m => m.value);
}

async function committedOffsets(admin) {
  const [entry] = await admin.fetchOffsets({ groupId: GROUP, topics: [INPUT] });
  const out = {};
  for (const p of entry.partitions) out[p.partition] = Number(p.offset);
  return out;
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 3 }, { topic: INPUT, numPartitions: 2 },
                                      { topic: OUTPUT, numPartitions: 2 }], waitForLeaders: true });
  const producer = kafka.producer({ transactionalId: `${prefix}-txn`, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const result = {};

  // commit, abort, and one left open while a read_committed consumer reads
  let txn = await producer.transaction();
  result.committed = await sendAll(txn, TOPIC, 3, 'committed', 9);
  await txn.commit();
  txn = await producer.transaction();
  result.aborted = await sendAll(txn, TOPIC, 3, 'aborted', 6);
  await txn.abort();
  txn = await producer.transaction();
  result.open = await sendAll(txn, TOPIC, 3, 'open', 3);

  const consumer = kafka.consumer({ groupId: `${prefix}-reader`, readUncommitted: false, maxWaitTimeInMs: 100 });
  let fetches = 0;
  consumer.on(consumer.events.FETCH, () => { fetches += 1; });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  const read = [];
  await consumer.run({ eachMessage: async ({ partition, message }) => {
    read.push({ partition, offset: Number(message.offset), value: message.value.toString() });
  } });
  await until(() => read.length >= result.committed.length, 'the committed records');
  const fetchesThen = fetches;
  await until(() => fetches >= fetchesThen + 5, 'five more fetches with the transaction open');
  result.readWhileOpen = read.map(r => r.value);
  await txn.commit();
  await until(() => read.length >= result.committed.length + result.open.length, 'the records once committed');
  result.read = read;
  await consumer.disconnect();

  // sendOffsets: the offsets are the group's only if the transaction commits
  result.offsets = [];
  const steps = [['commit', { 0: 3, 1: 2 }], ['abort', { 0: 5, 1: 5 }], ['commit', { 0: 5, 1: 4 }]];
  for (const [i, [step, offsets]] of steps.entries()) {
    txn = await producer.transaction();
    await txn.send({ topic: OUTPUT, messages: [{ partition: i % 2, value: `out-${i}-${step}` }] });
    await txn.sendOffsets({ consumerGroupId: GROUP, topics: [{ topic: INPUT, partitions: Object.entries(offsets)
      .map(([partition, offset]) => ({ partition: Number(partition), offset: String(offset) })) }] });
    if (step === 'commit') await txn.commit(); else await txn.abort();
    result.offsets.push({ step, sent: offsets, committed: await committedOffsets(admin) });
  }
  await producer.disconnect();
  await admin.disconnect();
  console.log(JSON.stringify(result));
}

main().catch(e => { console.error(e); process.exit(1); });
