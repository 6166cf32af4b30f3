// kafkajs against kafkalite: admin, idempotent keyed produce under every codec kafkajs has,
// offsets by timestamp, and a group consumer reading it all back. Prints one JSON result line.
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs');
const SnappyCodec = require('kafkajs-snappy');
const LZ4Codec = require('kafkajs-lz4');

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec;
CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec;

const [bootstrap, topic, phase] = process.argv.slice(2);
const kafka = new Kafka({ clientId: 'kafkalite-interop', brokers: [bootstrap], logLevel: logLevel.ERROR,
                          retry: { retries: 8, initialRetryTime: 100 } });
const CODECS = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP,
                 snappy: CompressionTypes.Snappy, lz4: CompressionTypes.LZ4 };
const PER_CODEC = 50;

async function produce() {
  const admin = kafka.admin();
  await admin.connect();
  const created = await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const sent = [];
  for (const [name, codec] of Object.entries(CODECS)) {
    const messages = [];
    for (let i = 0; i < PER_CODEC; i++) {
      messages.push({ key: `key-${i % 7}`, value: `${name}-${i}`, headers: { codec: name, seq: String(i) } });
    }
    const result = await producer.send({ topic, acks: -1, compression: codec, messages });
    sent.push(...result.map(r => ({ partition: r.partition, errorCode: r.errorCode })));
  }
  const beforeTs = Date.now();
  await new Promise(r => setTimeout(r, 20));
  await producer.send({ topic, acks: -1, messages: [{ key: 'late', value: 'late' }] });
  await producer.disconnect();
  const offsets = await admin.fetchTopicOffsets(topic);
  const byTime = await admin.fetchTopicOffsetsByTimestamp(topic, beforeTs + 10);
  await admin.disconnect();
  return { created, sent, offsets, byTime };
}

async function consume(expected) {
  const consumer = kafka.consumer({ groupId: `${topic}-group`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out with ${got.length} of ${expected}`)), 30000);
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        const headers = {};
        for (const [k, v] of Object.entries(message.headers)) headers[k] = v.toString();
        got.push({ partition, offset: message.offset, key: message.key && message.key.toString(),
                   value: message.value.toString(), headers });
        if (got.length === expected) { clearTimeout(timer); resolve(); }
      },
    }).catch(reject);
  });
  await consumer.disconnect();
  return { got };
}

(async () => {
  const result = phase === 'produce' ? await produce() : await consume(Number(phase));
  console.log(JSON.stringify(result));
})().catch(e => { console.error(e.stack || String(e)); process.exit(1); });
