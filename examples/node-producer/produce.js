// Publish one waitline event from Node.js, to the documented contract:
//   topic  `${WAITLINE_TOPIC_PREFIX}events`
//   key    UTF-8 bytes of `${name}|${correlationKey}` (names may not contain "|")
//   value  an Event JSON object (schemas/event.schema.json)
//   partition: murmur2 of the key, as the Java client's default partitioner picks it
//     (kafkajs's DefaultPartitioner is that one: murmur2(key) & 0x7fffffff % partitions)
//
// Usage: node produce.js NAME CORRELATION_KEY ['{"some": "data"}']
// Environment: WAITLINE_BOOTSTRAP_SERVERS (default 127.0.0.1:9092), WAITLINE_TOPIC_PREFIX.
// Prints where the record went, as JSON: {"topic", "partition", "offset", "key", "eventId"}.
'use strict'

const { randomUUID } = require('node:crypto')
const { Kafka, Partitioners, logLevel } = require('kafkajs')

function makeKey (name, correlationKey) {
  if (name.includes('|')) throw new Error(`an event name may not contain "|": ${name}`)
  return Buffer.from(`${name}|${correlationKey}`, 'utf8')
}

async function main () {
  const [name, correlationKey, data = '{}'] = process.argv.slice(2)
  if (!name || !correlationKey) {
    console.error('usage: node produce.js NAME CORRELATION_KEY [DATA_JSON]')
    process.exit(2)
  }
  const event = {
    eventId: randomUUID(),
    name,
    correlationKey,
    data: JSON.parse(data),
    timestamp: Date.now()
  }
  const topic = `${process.env.WAITLINE_TOPIC_PREFIX || ''}events`
  const kafka = new Kafka({
    clientId: 'waitline-node-example',
    brokers: (process.env.WAITLINE_BOOTSTRAP_SERVERS || '127.0.0.1:9092').split(','),
    logLevel: logLevel.WARN
  })
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  try {
    const key = makeKey(name, correlationKey)
    const [sent] = await producer.send({
      topic,
      acks: -1,
      messages: [{ key, value: JSON.stringify(event) }]
    })
    console.log(JSON.stringify({
      topic,
      partition: sent.partition,
      offset: Number(sent.baseOffset),
      key: key.toString('utf8'),
      eventId: event.eventId
    }))
  } finally {
    await producer.disconnect()
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
