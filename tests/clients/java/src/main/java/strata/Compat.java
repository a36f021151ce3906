package strata;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The Apache Kafka Java client (4.x, idempotence on by default) against a broker at
 * STRATA_BOOTSTRAP. With STRATA_BROKERS=n (a cluster of n brokers) its topics get n
 * replicas and min.insync.replicas=2, so the default producer's acks=all waits for them.
 * Prints one line per check; exits non-zero on the first failure.
 */
public final class Compat {
    private static final String BOOTSTRAP = System.getenv().getOrDefault("STRATA_BOOTSTRAP", "127.0.0.1:9092");
    private static final String SUFFIX = UUID.randomUUID().toString().substring(0, 8);
    private static final int BROKERS = Integer.parseInt(System.getenv().getOrDefault("STRATA_BROKERS", "1"));

    /** A topic of `partitions` with one replica per broker (min ISR 2 where there are several). */
    private static NewTopic newTopic(String name, int partitions, Map<String, String> configs) {
        Map<String, String> all = new HashMap<>(configs);
        if (BROKERS > 1) {
            all.put("min.insync.replicas", "2");
        }
        return new NewTopic(name, partitions, (short) BROKERS).configs(all);
    }

    private Compat() {}

    private static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError("FAILED: " + what);
        }
        System.out.println("ok - " + what);
    }

    private static Properties base() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        return p;
    }

    private static KafkaProducer<byte[], byte[]> producer(Map<String, String> extra) {
        Properties p = base();
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        p.putAll(extra);
        return new KafkaProducer<>(p);
    }

    private static KafkaConsumer<byte[], byte[]> consumer() {
        Properties p = base();
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        return new KafkaConsumer<>(p);
    }

    public static void main(String[] args) throws Exception {
        try (Admin admin = Admin.create(base())) {
            String topic = "java-" + SUFFIX;
            String small = "java-small-" + SUFFIX;
            NewTopic smallTopic = newTopic(small, 1, Map.of("max.message.bytes", "10000"));
            admin.createTopics(List.of(newTopic(topic, 3, Map.of()), smallTopic)).all().get();
            Set<String> names = admin.listTopics().names().get();
            check(names.contains(topic) && names.contains(small), "createTopics then listTopics shows both topics");
            int partitions = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size();
            check(partitions == 3, "describeTopics reports 3 partitions");
            check(admin.describeCluster().nodes().get().size() == BROKERS, "describeCluster lists every broker");
            int replicas = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().get(0).replicas().size();
            check(replicas == BROKERS, "each partition has one replica per broker");
            check(admin.describeCluster().clusterId().get() != null, "describeCluster has a cluster id");

            // Default producer: idempotence on, acks=all; lz4 batches with headers.
            int count = 10_000;
            long baseTs = System.currentTimeMillis() - 60_000;
            Map<TopicPartition, List<long[]>> acked = new HashMap<>();
            try (KafkaProducer<byte[], byte[]> producer = producer(Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, "lz4",
                    ProducerConfig.LINGER_MS_CONFIG, "5"))) {
                List<Future<RecordMetadata>> futures = new ArrayList<>();
                for (int i = 0; i < count; i++) {
                    RecordHeaders headers = new RecordHeaders();
                    headers.add("n", Integer.toString(i).getBytes(StandardCharsets.UTF_8));
                    futures.add(producer.send(new ProducerRecord<>(topic, i % 3, baseTs + i,
                            ("k" + i).getBytes(StandardCharsets.UTF_8), ("v" + i).getBytes(StandardCharsets.UTF_8), headers)));
                }
                for (int i = 0; i < count; i++) {
                    RecordMetadata m = futures.get(i).get();
                    acked.computeIfAbsent(new TopicPartition(topic, m.partition()), k -> new ArrayList<>()).add(new long[] {m.offset(), i});
                }
            }
            check(acked.values().stream().mapToInt(List::size).sum() == count, "10000 records acknowledged by an idempotent lz4 producer");

            Map<String, Integer> seen = new HashMap<>();
            try (KafkaConsumer<byte[], byte[]> consumer = consumer()) {
                List<TopicPartition> tps = new ArrayList<>(acked.keySet());
                consumer.assign(tps);
                consumer.seekToBeginning(tps);
                long deadline = System.currentTimeMillis() + 60_000;
                while (seen.size() < count && System.currentTimeMillis() < deadline) {
                    for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                        String key = new String(r.key(), StandardCharsets.UTF_8);
                        int i = Integer.parseInt(key.substring(1));
                        check0(new String(r.value(), StandardCharsets.UTF_8).equals("v" + i), "value of " + key);
                        check0(r.timestamp() == baseTs + i, "timestamp of " + key);
                        check0(new String(r.headers().lastHeader("n").value(), StandardCharsets.UTF_8).equals(Integer.toString(i)), "header of " + key);
                        seen.put(key, (int) r.offset());
                    }
                }
            }
            check(seen.size() == count, "assign+seekToBeginning reads all 10000 records back equal");

            TopicPartition p0 = new TopicPartition(topic, 0);
            List<long[]> p0acks = acked.get(p0);
            long[] middle = p0acks.get(p0acks.size() / 2);
            Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> byTime =
                    admin.listOffsets(Map.of(p0, OffsetSpec.forTimestamp(baseTs + middle[1]))).all().get();
            check(byTime.get(p0).offset() == middle[0], "listOffsets forTimestamp finds the record's offset");
            check(admin.listOffsets(Map.of(p0, OffsetSpec.earliest())).all().get().get(p0).offset() == 0, "listOffsets earliest is 0");
            check(admin.listOffsets(Map.of(p0, OffsetSpec.latest())).all().get().get(p0).offset() == p0acks.size(), "listOffsets latest is the log end");
            ListOffsetsResult.ListOffsetsResultInfo max = admin.listOffsets(Map.of(p0, OffsetSpec.maxTimestamp())).all().get().get(p0);
            long[] last = p0acks.get(p0acks.size() - 1);
            check(max.offset() == last[0] && max.timestamp() == baseTs + last[1], "listOffsets maxTimestamp finds the newest record");

            try (KafkaProducer<byte[], byte[]> producer = producer(Map.of(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, "1000000",
                    ProducerConfig.COMPRESSION_TYPE_CONFIG, "none"))) {
                try {
                    producer.send(new ProducerRecord<>(small, 0, null, new byte[20_000])).get();
                    check(false, "a record over max.message.bytes is refused");
                } catch (ExecutionException e) {
                    check(e.getCause() instanceof RecordTooLargeException, "a record over max.message.bytes fails with RecordTooLargeException");
                }
            }

            consumerGroup(admin, topic, count);

            admin.deleteTopics(List.of(topic, small)).all().get();
            Set<String> after = admin.listTopics().names().get();
            check(!after.contains(topic) && !after.contains(small), "deleteTopics removes both topics");
        }
        System.out.println("java compat: all checks passed");
    }

    private static KafkaConsumer<byte[], byte[]> groupMember(String group) {
        Properties p = base();
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
        p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, CooperativeStickyAssignor.class.getName());
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        return new KafkaConsumer<>(p);
    }

    /** Two members of a classic group with the cooperative-sticky assignor share the topic,
     *  read every record once, commit, and a later member resumes after the commits. */
    private static void consumerGroup(Admin admin, String topic, int count) throws Exception {
        String group = "java-group-" + SUFFIX;
        Set<String> keys = new java.util.HashSet<>();
        int reads = 0;
        try (KafkaConsumer<byte[], byte[]> a = groupMember(group); KafkaConsumer<byte[], byte[]> b = groupMember(group)) {
            a.subscribe(List.of(topic));
            b.subscribe(List.of(topic));
            // Poll until every record is read and the group has settled: a rebalance may still
            // be moving a partition when the last record arrives, and a commit then would miss it.
            long deadline = System.currentTimeMillis() + 60_000;
            while (System.currentTimeMillis() < deadline) {
                for (KafkaConsumer<byte[], byte[]> member : List.of(a, b)) {
                    for (ConsumerRecord<byte[], byte[]> r : member.poll(Duration.ofMillis(100))) {
                        keys.add(new String(r.key(), StandardCharsets.UTF_8));
                        reads++;
                    }
                }
                if (keys.size() == count && readToTheEnd(a) && readToTheEnd(b)
                        && a.assignment().size() + b.assignment().size() == 3) {
                    break;
                }
            }
            int owned = a.assignment().size() + b.assignment().size();
            check(owned == 3, "two cooperative-sticky members own the 3 partitions between them (" + a.assignment() + " " + b.assignment() + ")");
            check(keys.size() == count, "the group reads all " + count + " records (" + reads + " reads)");
            a.commitSync();
            b.commitSync();
        }
        long committed = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get()
                .values().stream().mapToLong(o -> o.offset()).sum();
        check(committed == count, "listConsumerGroupOffsets sums to " + count + " (" + committed + ")");
        try (KafkaProducer<byte[], byte[]> producer = producer(Map.of())) {
            for (int i = 0; i < 5; i++) {
                producer.send(new ProducerRecord<>(topic, i % 3, null, ("late" + i).getBytes(StandardCharsets.UTF_8), new byte[0])).get();
            }
        }
        Set<String> resumed = new java.util.HashSet<>();
        try (KafkaConsumer<byte[], byte[]> c = groupMember(group)) {
            c.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 30_000;
            while (resumed.size() < 5 && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                    resumed.add(new String(r.key(), StandardCharsets.UTF_8));
                }
            }
        }
        check(resumed.equals(Set.of("late0", "late1", "late2", "late3", "late4")), "a new member resumes after the commits: " + resumed);
    }

    /** Whether `member` has consumed every partition it owns up to the partition's end. */
    private static boolean readToTheEnd(KafkaConsumer<byte[], byte[]> member) {
        Set<TopicPartition> owned = member.assignment();
        Map<TopicPartition, Long> ends = member.endOffsets(owned);
        return owned.stream().allMatch(tp -> member.position(tp) == ends.get(tp));
    }

    private static void check0(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError("FAILED: " + what);
        }
    }
}
