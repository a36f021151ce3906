"""confluent-kafka's AdminClient, Producer and Consumer against a Strata cluster.

$STRATA_BOOTSTRAPS names one bootstrap address per node (at least three brokers). One line
per check; exits non-zero on the first failure.
"""

import collections
import os
import sys
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, ElectionType, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

NODES = os.environ["STRATA_BOOTSTRAPS"].split(",")
TOPIC = f"py-cluster-{uuid.uuid4().hex[:8]}"
PARTITIONS = 6
RECORDS = 60


def check(ok, what):
    if not ok:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)
    print(f"ok - {what}", flush=True)


def leaders_seen_by(node):
    """Partition -> leader as `node` reports it, once every partition has a leader."""
    admin = AdminClient({"bootstrap.servers": node})
    deadline = time.time() + 30
    while True:
        topics = admin.list_topics(TOPIC, timeout=10).topics
        partitions = topics[TOPIC].partitions if TOPIC in topics else {}
        leaders = {p.id: p.leader for p in partitions.values()}
        if (len(leaders) == PARTITIONS and all(l >= 0 for l in leaders.values())) or time.time() > deadline:
            return leaders
        time.sleep(0.2)


def main():
    admin = AdminClient({"bootstrap.servers": NODES[0]})
    futures = admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1, config={"retention.ms": "3600000"})],
                                  operation_timeout=10)
    futures[TOPIC].result(timeout=15)
    check(True, f"AdminClient created {TOPIC} with {PARTITIONS} partitions through {NODES[0]}")

    views = [leaders_seen_by(node) for node in NODES]
    check(all(view == views[0] for view in views), f"every node reports the same leaders: {views[0]}")
    per_broker = collections.Counter(views[0].values())
    expected = PARTITIONS // len(NODES)
    check(len(per_broker) == len(NODES) and set(per_broker.values()) == {expected},
          f"leaders spread evenly over the {len(NODES)} brokers: {dict(per_broker)}")

    acked = []
    producer = Producer({"bootstrap.servers": NODES[1], "acks": "all"})
    for i in range(RECORDS):
        producer.produce(TOPIC, key=str(i).encode(), value=f"v{i}".encode(), partition=i % PARTITIONS,
                         on_delivery=lambda err, msg: acked.append(err))
    producer.flush(30)
    check(len(acked) == RECORDS and all(err is None for err in acked),
          f"{RECORDS} records acknowledged through {NODES[1]}")

    consumer = Consumer({"bootstrap.servers": NODES[-1], "group.id": f"{TOPIC}-reader",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    seen = set()
    deadline = time.time() + 30
    while len(seen) < RECORDS and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error() is not None:
            check(False, f"consume without error ({msg.error()})")
        if msg.partition() != int(msg.key()) % PARTITIONS:
            check(False, f"record {msg.key()} read from partition {msg.partition()}")
        seen.add(int(msg.key()))
    consumer.close()
    check(seen == set(range(RECORDS)), f"all {RECORDS} records read back through {NODES[-1]}")

    # A future fails if its client is destroyed first: keep the client.
    other = AdminClient({"bootstrap.servers": NODES[-1]})
    resource = ConfigResource(ResourceType.TOPIC, TOPIC)
    configs = other.describe_configs([resource])[resource].result(timeout=15)
    check(configs["retention.ms"].value == "3600000", "describe_configs through another node shows the create's config")

    # Every partition is led by its preferred (only) replica: nothing to elect.
    elected = admin.elect_leaders(ElectionType.PREFERRED,
                                  [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]).result(timeout=30)
    check(len(elected) == PARTITIONS
          and all(e is not None and e.code() == KafkaError.ELECTION_NOT_NEEDED for e in elected.values()),
          f"elect_leaders answers ELECTION_NOT_NEEDED where the preferred replica leads: {elected}")

    admin.delete_topics([TOPIC], operation_timeout=10)[TOPIC].result(timeout=15)
    # The other node applies the deletion up to a heartbeat later.
    deadline = time.time() + 30
    gone = TOPIC not in other.list_topics(timeout=10).topics
    while not gone and time.time() < deadline:
        time.sleep(0.2)
        gone = TOPIC not in other.list_topics(timeout=10).topics
    check(gone, "a topic deleted through one node is gone from another")
    print("confluent-kafka cluster: all checks passed")


if __name__ == "__main__":
    main()
