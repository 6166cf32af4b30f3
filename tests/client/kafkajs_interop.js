// kafkajs side of tests/client/test_interop.py. Run with the cwd in tests/interop/node (where kafkajs is installed).
//   node kafkajs_interop.js produce <broker> <topic> <count>   -> [{key, partition, offset}]
//   node kafkajs_interop.js consume <broker> <topic> <count>   -> [{key, value, partition, offset, headers}]
const path = require('path')
const installed = (name) => require(path.join(process.cwd(), 'node_modules', name))
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = installed('kafkajs')
CompressionCodecs[CompressionTypes.Snappy] = installed('kafkajs-snappy')
const LZ4Codec = installed('kafkajs-lz4')
CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec

async function main() {
  const [mode, broker, topic, countText] = process.argv.slice(2)
  const count = parseInt(countText, 10)
  const kafka = new Kafka({ clientId: 'kafkalite-client-interop', brokers: [broker], logLevel: logLevel.ERROR })
  if (mode === 'produce') {
    const producer = kafka.producer()
    await producer.connect()
    const out = []
    for (let i = 0; i < count; i++) {
      const key = `js-key-${i}`
      const [meta] = await producer.send({ topic, messages: [{ key, value: `js-${i}`, headers: { from: 'kafkajs' } }] })
      out.push({ key, partition: meta.partition, offset: meta.baseOffset })
    }
    await producer.disconnect()
    console.log(JSON.stringify(out))
  } else {
    const consumer = kafka.consumer({ groupId: `kafkajs-${topic}` })
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    const got = []
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${count} messages`)), 30000)
      consumer.run({
        eachMessage: async ({ partition, message }) => {
          const headers = {}
          for (const [k, v] of Object.entries(message.headers || {})) headers[k] = v.toString()
          got.push({ key: message.key && message.key.toString(), value: message.value.toString(), partition,
                     offset: message.offset, headers })
          if (got.length >= count) { clearTimeout(timer); resolve() }
        },
      }).catch(reject)
    })
    await consumer.disconnect()
    console.log(JSON.stringify(got))
  }
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })
