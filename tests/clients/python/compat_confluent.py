"""confluent-kafka (librdkafka) against a Strata broker at $STRATA_BOOTSTRAP.

One line per check; exits non-zero on the first failure. Consumers use assign(): the broker
has no consumer groups yet, so nothing is committed (librdkafka still needs a group.id).
"""

import os
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

BOOTSTRAP = os.environ.get("STRATA_BOOTSTRAP", "127.0.0.1:9092")
SUFFIX = uuid.uuid4().hex[:8]
BASE_TS = int(time.time() * 1000) - 3_600_000


def check(ok, what):
    if not ok:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)
    print(f"ok - {what}", flush=True)


_ADMIN = []


def admin():
    """One admin client for the run: futures fail if their client is destroyed first."""
    if not _ADMIN:
        _ADMIN.append(AdminClient({"bootstrap.servers": BOOTSTRAP}))
    return _ADMIN[0]


def create_topic(name, partitions, config=None):
    futures = admin().create_topics([NewTopic(name, partitions, 1, config=config or {})], operation_timeout=10)
    futures[name].result(timeout=15)


def consumer(**extra):
    conf = {
        "bootstrap.servers": BOOTSTRAP,
        "group.id": f"compat-{SUFFIX}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "check.crcs": True,
        "fetch.wait.max.ms": 100,
    }
    conf.update(extra)
    return Consumer(conf)


def produce(topic, partitions, count, start, **conf):
    """Produces `count` keyed records with headers and timestamps; returns {(p, offset): i}."""
    acked = {}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[(msg.partition(), msg.offset())] = int(msg.key().decode().split("-")[1])

    producer = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 5, **conf})
    for i in range(start, start + count):
        while True:
            try:
                producer.produce(
                    topic,
                    key=f"key-{i}".encode(),
                    value=value_of(i),
                    partition=i % partitions,
                    headers=[("n", str(i).encode()), ("empty", b"")],
                    timestamp=BASE_TS + i,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                producer.poll(0.05)
    remaining = producer.flush(60)
    check(remaining == 0 and not errors, f"{count} records to {topic} acknowledged ({conf or 'defaults'}) errors={errors[:3]}")
    return acked


def value_of(i):
    return f"value-{i}-".encode() + b"x" * (i % 97)


def consume_all(topic, partitions, expected):
    """Reads every partition from the start and compares with what was acknowledged."""
    c = consumer()
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    next_offset = {p: 0 for p in range(partitions)}
    seen = 0
    deadline = time.time() + 90
    while seen < len(expected) and time.time() < deadline:
        for msg in c.consume(num_messages=1000, timeout=0.5):
            if msg.error():
                check(False, f"consume error {msg.error()}")
            p, o = msg.partition(), msg.offset()
            if o != next_offset[p]:
                check(False, f"partition {p} expected offset {next_offset[p]} got {o}")
            next_offset[p] += 1
            i = expected.get((p, o))
            if i is None:
                check(False, f"record at {(p, o)} was never acknowledged")
            ok = (
                msg.key() == f"key-{i}".encode()
                and msg.value() == value_of(i)
                and msg.timestamp()[1] == BASE_TS + i
                and msg.headers() == [("n", str(i).encode()), ("empty", b"")]
            )
            if not ok:
                check(False, f"record {i} at {(p, o)} differs: {msg.key()} {msg.timestamp()} {msg.headers()}")
            seen += 1
    c.close()
    check(seen == len(expected), f"{seen}/{len(expected)} records of {topic} read back byte-for-byte at their offsets")


def compression_round_trips():
    start = 0
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        topic = f"py-{codec}-{SUFFIX}"
        create_topic(topic, 8)
        acked = produce(topic, 8, 20_000, start, **{"compression.type": codec, "acks": "all"})
        consume_all(topic, 8, acked)
        start += 20_000


def acks_settings():
    for acks in ["0", "1", "all"]:
        topic = f"py-acks{acks}-{SUFFIX}"
        create_topic(topic, 1)
        acked = produce(topic, 1, 200, 0, acks=acks)
        c = consumer()
        # acks=0 is not answered: the last request may still be on its way to the log.
        deadline = time.time() + 30
        low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        while high - low < 200 and time.time() < deadline:
            time.sleep(0.1)
            low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        c.close()
        check(high - low == 200, f"acks={acks}: all 200 records stored")
        if acks != "0":
            consume_all(topic, 1, acked)


def idempotent_producer():
    topic = f"py-idem-{SUFFIX}"
    create_topic(topic, 4)
    acked = produce(topic, 4, 5000, 0, **{"enable.idempotence": True, "retries": 10, "max.in.flight.requests.per.connection": 5})
    c = consumer()
    total = sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(4))
    c.close()
    check(total == 5000, "idempotent producer: the log holds exactly the 5000 records sent")
    consume_all(topic, 4, acked)


def offsets_for_times():
    topic = f"py-time-{SUFFIX}"
    create_topic(topic, 1)
    acked = produce(topic, 1, 1000, 0, **{"batch.num.messages": 10})
    c = consumer()
    target_i = 437
    offset = next(o for (p, o), i in acked.items() if i == target_i)
    got = c.offsets_for_times([TopicPartition(topic, 0, BASE_TS + target_i)], timeout=10)
    check(got[0].offset == offset, f"offsets_for_times finds offset {offset} (got {got[0].offset})")
    got = c.offsets_for_times([TopicPartition(topic, 0, BASE_TS + 10_000_000)], timeout=10)
    check(got[0].offset == -1, "offsets_for_times past the newest record answers the end (-1)")
    c.close()


def long_poll():
    topic = f"py-tail-{SUFFIX}"
    create_topic(topic, 1)
    c = consumer(**{"fetch.wait.max.ms": 30000})
    c.assign([TopicPartition(topic, 0, 0)])  # the topic is empty: 0 is its end
    for _ in range(5):
        c.poll(0.2)
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 0})
    sent = time.time()
    producer.produce(topic, key=b"k", value=b"fresh", partition=0)
    producer.flush(10)
    msg = None
    # Woken by the append, not by the 30 s max wait.
    while msg is None and time.time() - sent < 15:
        msg = c.poll(0.1)
    c.close()
    check(msg is not None and msg.value() == b"fresh", f"an assigned consumer sees a new record within the long-poll ({time.time() - sent:.2f}s)")


def produce_one(topic, size):
    """Produces one record of `size` bytes to partition 0; answers its delivery error."""
    errors = []
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "message.max.bytes": 1_000_000, "compression.type": "none"})
    producer.produce(topic, value=b"x" * size, partition=0, on_delivery=lambda err, msg: errors.append(err))
    producer.flush(15)
    check(len(errors) == 1, f"one delivery report for a {size}-byte record")
    return errors[0]


def message_too_large():
    topic = f"py-small-{SUFFIX}"
    create_topic(topic, 1, {"max.message.bytes": "10000"})
    error = produce_one(topic, 20_000)
    check(error is not None and error.code() == KafkaError.MSG_SIZE_TOO_LARGE,
          f"a record over max.message.bytes fails with MSG_SIZE_TOO_LARGE ({error})")


def topic_admin():
    topic = f"py-admin-{SUFFIX}"
    create_topic(topic, 3)
    md = admin().list_topics(timeout=10)
    check(topic in md.topics and len(md.topics[topic].partitions) == 3, "AdminClient created a 3-partition topic")
    try:
        create_topic(topic, 1)
        check(False, "creating a topic twice is refused")
    except KafkaException as e:
        check(e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, "creating a topic twice is TOPIC_ALREADY_EXISTS")
    admin().delete_topics([topic], operation_timeout=10)[topic].result(timeout=15)
    check(topic not in admin().list_topics(timeout=10).topics, "AdminClient deleted the topic")


def expect_error(what, code, action):
    try:
        action()
    except KafkaException as e:
        got = e.args[0].code()
        check(got == code, f"{what}: error {code} (got {got}: {e.args[0].str()})")
        return
    check(False, f"{what}: refused")


def topic_config(topic):
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return admin().describe_configs([resource], request_timeout=10)[resource].result(timeout=15)


def alter(resource_type, name, *entries):
    resource = ConfigResource(resource_type, name, incremental_configs=list(entries))
    admin().incremental_alter_configs([resource], request_timeout=10)[resource].result(timeout=15)


def config_admin():
    """Configs and partitions through the admin APIs: every change is committed by the
    metadata quorum and read back from it."""
    topic = f"py-configs-{SUFFIX}"
    create_topic(topic, 2, {"retention.ms": "86400000"})
    entry = topic_config(topic)["retention.ms"]
    check(entry.value == "86400000" and entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
          f"describe_configs: the create's override is a topic config ({entry.value}, source {entry.source})")
    default = topic_config(topic)["cleanup.policy"]
    check(default.value == "delete" and default.source == ConfigSource.DEFAULT_CONFIG.value,
          "describe_configs: an untouched setting is Kafka's default")

    alter(ResourceType.TOPIC, topic,
          ConfigEntry("segment.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
          ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
          ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND))
    configs = topic_config(topic)
    check(configs["segment.ms"].value == "3600000", "incremental_alter_configs SET takes effect")
    check(configs["retention.ms"].value == "604800000" and configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value,
          "incremental_alter_configs DELETE restores the default")
    check(configs["cleanup.policy"].value == "delete,compact", "incremental_alter_configs APPEND extends a list")

    expect_error("an invalid value", KafkaError.INVALID_CONFIG, lambda: alter(
        ResourceType.TOPIC, topic, ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)))
    expect_error("an unknown setting", KafkaError.INVALID_CONFIG, lambda: alter(
        ResourceType.TOPIC, topic, ConfigEntry("no.such.setting", "1", incremental_operation=AlterConfigOpType.SET)))
    expect_error("a config change to a missing topic", KafkaError.UNKNOWN_TOPIC_OR_PART, lambda: alter(
        ResourceType.TOPIC, f"missing-{SUFFIX}", ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)))

    # A broker's dynamic default reaches every topic that does not override it (the
    # cluster-wide default, Kafka's broker resource "", has no name confluent-kafka accepts).
    broker_id = str(admin().list_topics(timeout=10).orig_broker_id)
    alter(ResourceType.BROKER, broker_id,
          ConfigEntry("log.retention.bytes", "123456789", incremental_operation=AlterConfigOpType.SET))
    entry = topic_config(topic)["retention.bytes"]
    check(entry.value == "123456789" and entry.source == ConfigSource.DYNAMIC_BROKER_CONFIG.value,
          "a broker's dynamic default shows in the topic's config")
    resource = ConfigResource(ResourceType.BROKER, broker_id)
    described = admin().describe_configs([resource], request_timeout=10)[resource].result(timeout=15)
    check(described["log.retention.bytes"].value == "123456789", "describe_configs of the broker shows it")
    alter(ResourceType.BROKER, broker_id,
          ConfigEntry("log.retention.bytes", None, incremental_operation=AlterConfigOpType.DELETE))
    check(topic_config(topic)["retention.bytes"].value == "-1", "removing the broker default restores Kafka's")

    # Legacy AlterConfigs replaces the topic's overrides as a whole.
    resource = ConfigResource(ResourceType.TOPIC, topic, set_config={"max.message.bytes": "100000"})
    admin().alter_configs([resource], request_timeout=10)[resource].result(timeout=15)
    configs = topic_config(topic)
    check(configs["max.message.bytes"].value == "100000" and configs["segment.ms"].value == "604800000",
          "alter_configs replaces every override")
    error = produce_one(topic, 200_000)
    check(error is not None and error.code() == KafkaError.MSG_SIZE_TOO_LARGE,
          "the altered max.message.bytes is enforced at once")

    admin().create_partitions([NewPartitions(topic, 4)], validate_only=True)[topic].result(timeout=15)
    check(len(admin().list_topics(topic, timeout=10).topics[topic].partitions) == 2,
          "create_partitions validate_only changes nothing")
    admin().create_partitions([NewPartitions(topic, 4)])[topic].result(timeout=15)
    check(len(admin().list_topics(topic, timeout=10).topics[topic].partitions) == 4,
          "create_partitions grows the topic to 4")
    expect_error("shrinking a topic", KafkaError.INVALID_PARTITIONS,
                 lambda: admin().create_partitions([NewPartitions(topic, 3)])[topic].result(timeout=15))
    produce(topic, 4, 40, 0)

    expect_error("a replication factor above the live brokers", KafkaError.INVALID_REPLICATION_FACTOR,
                 lambda: admin().create_topics([NewTopic(f"py-rf-{SUFFIX}", 1, 3)])[f"py-rf-{SUFFIX}"].result(timeout=15))
    expect_error("an invalid topic name", KafkaError.TOPIC_EXCEPTION,
                 lambda: create_topic("bad/name", 1))
    expect_error("an invalid config at create", KafkaError.INVALID_CONFIG,
                 lambda: create_topic(f"py-badcfg-{SUFFIX}", 1, {"cleanup.policy": "shred"}))


def main():
    print(f"confluent-kafka {__import__('confluent_kafka').version()} librdkafka {__import__('confluent_kafka').libversion()} against {BOOTSTRAP}")
    compression_round_trips()
    acks_settings()
    idempotent_producer()
    offsets_for_times()
    long_poll()
    message_too_large()
    topic_admin()
    config_admin()
    print("confluent-kafka compat: all checks passed")


if __name__ == "__main__":
    main()
