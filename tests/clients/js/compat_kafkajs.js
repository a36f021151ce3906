// kafkajs (pure JavaScript) against a Strata broker at $STRATA_BOOTSTRAP: admin, producing
// (acks, gzip, idempotence), offsets by time, MESSAGE_TOO_LARGE, and a consumer group that
// reads, commits and resumes.
'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

const bootstrap = process.env.STRATA_BOOTSTRAP || '127.0.0.1:9092';
const suffix = crypto.randomBytes(4).toString('hex');
const kafka = new Kafka({ clientId: 'strata-compat', brokers: [bootstrap], logLevel: logLevel.ERROR, retry: { retries: 3 } });

function ok(what) {
  console.log(`ok - ${what}`);
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  const topic = `js-${suffix}`;
  const small = `js-small-${suffix}`;
  assert.equal(await admin.createTopics({
    topics: [
      { topic, numPartitions: 2, replicationFactor: 1 },
      { topic: small, numPartitions: 1, replicationFactor: 1, configEntries: [{ name: 'max.message.bytes', value: '10000' }] },
    ],
    waitForLeaders: true,
  }), true);
  ok('createTopics');
  const listed = await admin.listTopics();
  assert.ok(listed.includes(topic) && listed.includes(small));
  ok('listTopics shows the new topics');
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  assert.equal(meta.topics[0].partitions.length, 2);
  ok('fetchTopicMetadata reports 2 partitions');

  const baseTs = Date.now() - 60_000;
  const producer = kafka.producer();
  await producer.connect();
  let expectedNext = 0;
  for (const [acks, compression] of [[-1, CompressionTypes.None], [1, CompressionTypes.GZIP], [-1, CompressionTypes.GZIP]]) {
    const messages = Array.from({ length: 100 }, (_, i) => ({
      key: `k${expectedNext + i}`, value: `v${expectedNext + i}`, partition: 0,
      timestamp: String(baseTs + expectedNext + i), headers: { n: String(expectedNext + i) },
    }));
    const [result] = await producer.send({ topic, acks, compression, messages });
    assert.equal(result.errorCode, 0);
    assert.equal(Number(result.baseOffset), expectedNext);
    expectedNext += 100;
    ok(`send acks=${acks} compression=${compression} lands at offset ${result.baseOffset}`);
  }
  await producer.send({ topic, acks: 0, messages: [{ value: 'fire-and-forget', partition: 1 }] });
  ok('send acks=0');
  await producer.disconnect();

  const idempotent = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await idempotent.connect();
  for (let i = 0; i < 5; i++) {
    await idempotent.send({ topic, messages: [{ value: `idem-${i}`, partition: 1 }] });
  }
  await idempotent.disconnect();
  ok('idempotent producer sends');

  const offsets = await admin.fetchTopicOffsets(topic);
  const p0 = offsets.find((o) => o.partition === 0);
  const p1 = offsets.find((o) => o.partition === 1);
  assert.equal(p0.low, '0');
  assert.equal(p0.high, String(expectedNext));
  // acks=0 is not acknowledged: wait for it to land.
  let high1 = p1.high;
  for (let i = 0; i < 300 && high1 !== '6'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    high1 = (await admin.fetchTopicOffsets(topic)).find((o) => o.partition === 1).high;
  }
  assert.equal(high1, '6');
  ok('fetchTopicOffsets: earliest and latest match what was sent');

  const byTime = await admin.fetchTopicOffsetsByTimestamp(topic, baseTs + 150);
  assert.equal(byTime.find((o) => o.partition === 0).offset, '150');
  ok('fetchTopicOffsetsByTimestamp finds offset 150');

  const tooBig = kafka.producer({ retry: { retries: 0 } });
  await tooBig.connect();
  await assert.rejects(
    tooBig.send({ topic: small, messages: [{ value: 'x'.repeat(20_000), partition: 0 }] }),
    (e) => e.type === 'MESSAGE_TOO_LARGE' || (e.cause && e.cause.type === 'MESSAGE_TOO_LARGE'),
  );
  await tooBig.disconnect();
  ok('a message over max.message.bytes is MESSAGE_TOO_LARGE');

  await consumerGroup(admin, topic, expectedNext + 6);

  await admin.deleteTopics({ topics: [topic, small] });
  const after = await admin.listTopics();
  assert.ok(!after.includes(topic) && !after.includes(small));
  ok('deleteTopics');
  await admin.disconnect();
  console.log('kafkajs compat: all checks passed');
}

// Reads `topic` through a consumer group until `count` records arrived; answers them.
async function consumeAs(groupId, topic, count) {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10_000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const seen = [];
  await consumer.run({ eachMessage: async ({ partition, message }) => { seen.push([partition, message.offset]); } });
  const deadline = Date.now() + 30_000;
  while (seen.length < count && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  await consumer.disconnect();
  return seen;
}

async function consumerGroup(admin, topic, count) {
  const groupId = `js-group-${suffix}`;
  const first = await consumeAs(groupId, topic, count);
  assert.equal(first.length, count);
  ok(`a consumer group reads all ${count} records`);
  const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
  const total = committed[0].partitions.reduce((sum, p) => sum + Number(p.offset), 0);
  assert.equal(total, count);
  ok('fetchOffsets shows the group committed everything it read');
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, messages: [{ value: 'late', partition: 0 }] });
  await producer.disconnect();
  const resumed = await consumeAs(groupId, topic, 1);
  assert.deepEqual(resumed, [[0, String(count - 6)]]);
  ok('the group resumes after its commits');
  const groups = await admin.listGroups();
  assert.ok(groups.groups.some((g) => g.groupId === groupId));
  const described = await admin.describeGroups([groupId]);
  assert.equal(described.groups[0].state, 'Empty');
  await admin.deleteGroups([groupId]);
  ok('listGroups, describeGroups and deleteGroups');
}

main().catch((e) => {
  console.error('FAILED:', e);
  process.exit(1);
});
