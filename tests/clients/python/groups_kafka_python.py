"""kafka-python (a pure-Python client) consumer groups against a Strata broker at
$STRATA_BOOTSTRAP: subscribe, read, commit, and resume after the commits.
One line per check; exits non-zero on the first failure.
"""

import os
import sys
import time
import uuid

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

BOOTSTRAP = os.environ.get("STRATA_BOOTSTRAP", "127.0.0.1:9092")
SUFFIX = uuid.uuid4().hex[:8]
TOPIC = f"kp-{SUFFIX}"
GROUP = f"kp-group-{SUFFIX}"


def check(ok, what):
    if not ok:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)
    print(f"ok - {what}", flush=True)


def produce(values):
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP)
    for i, value in enumerate(values):
        producer.send(TOPIC, value=value, partition=i % 3)
    producer.flush(15)
    producer.close()


def consume(count):
    consumer = KafkaConsumer(TOPIC, bootstrap_servers=BOOTSTRAP, group_id=GROUP,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             session_timeout_ms=10000, heartbeat_interval_ms=500)
    seen = []
    deadline = time.time() + 30
    while len(seen) < count and time.time() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            seen.extend(r.value for r in records)
    consumer.commit()
    consumer.close()
    return seen


def main():
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.create_topics([NewTopic(TOPIC, 3, 1)])
    produce([f"v{i}".encode() for i in range(30)])
    first = consume(30)
    check(sorted(first) == sorted(f"v{i}".encode() for i in range(30)), f"a group reads all 30 records ({len(first)})")
    produce([b"late-0", b"late-1", b"late-2"])
    resumed = consume(3)
    check(sorted(resumed) == [b"late-0", b"late-1", b"late-2"], f"the group resumes after its commits: {resumed}")
    listed = {g["group_id"]: g["group_state"] for g in admin.list_groups()}
    check(listed.get(GROUP) == "Empty", f"list_groups shows the group, empty: {listed.get(GROUP)}")
    offsets = admin.list_group_offsets(GROUP)[GROUP]
    check(sum(o.offset for o in offsets.values()) == 33, f"list_group_offsets sums to 33: {offsets}")
    admin.close()
    print("kafka-python groups: all checks passed")


if __name__ == "__main__":
    main()
