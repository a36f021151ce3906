"""confluent-kafka (librdkafka) consumer groups against a Strata broker at $STRATA_BOOTSTRAP.

Subscribe with three members, eager and cooperative rebalancing, a member leaving, a static
member restarting, and commit/resume. One line per check; exits non-zero on the first failure.
"""

import os
import sys
import time
import uuid

from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP = os.environ.get("STRATA_BOOTSTRAP", "127.0.0.1:9092")
SUFFIX = uuid.uuid4().hex[:8]
PARTITIONS = 6


def check(ok, what):
    if not ok:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)
    print(f"ok - {what}", flush=True)


_ADMIN = AdminClient({"bootstrap.servers": BOOTSTRAP})


def topic_with_records(name, count, create=True):
    if create:
        _ADMIN.create_topics([NewTopic(name, PARTITIONS, 1)], operation_timeout=10)[name].result(timeout=15)
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    for i in range(count):
        producer.produce(name, key=str(i).encode(), value=f"v{i}".encode(), partition=i % PARTITIONS)
    check(producer.flush(15) == 0, f"{count} records produced to {name}")


class Member:
    """A consumer with its assignment as its rebalance callbacks report it."""

    def __init__(self, group, topic, **conf):
        self.assigned = set()
        self.revoked = []
        self.rebalances = 0
        settings = {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 500,
        }
        settings.update(conf)
        self.cooperative = settings.get("partition.assignment.strategy") == "cooperative-sticky"
        self.consumer = Consumer(settings)
        self.consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, consumer, partitions):
        self.rebalances += 1
        if self.cooperative:
            self.assigned |= {p.partition for p in partitions}
        else:
            self.assigned = {p.partition for p in partitions}

    def _on_revoke(self, consumer, partitions):
        self.rebalances += 1
        gone = {p.partition for p in partitions}
        self.revoked.append(gone)
        self.assigned -= gone

    def poll(self, seen):
        msg = self.consumer.poll(0.05)
        if msg is not None and msg.error() is None:
            seen.append((msg.partition(), msg.offset()))
        return msg


def poll_until(members, done, seconds, seen=None):
    seen = [] if seen is None else seen
    deadline = time.time() + seconds
    while time.time() < deadline:
        for m in members:
            m.poll(seen)
        if done():
            return True
    return False


def owned_exactly_once(members):
    owned = [p for m in members for p in m.assigned]
    return sorted(owned) == list(range(PARTITIONS))


def three_members_share_the_partitions():
    topic = f"grp-eager-{SUFFIX}"
    topic_with_records(topic, 0)
    group = f"eager-{SUFFIX}"
    members = [Member(group, topic) for _ in range(3)]
    seen = []
    balanced = poll_until(members, lambda: owned_exactly_once(members) and all(len(m.assigned) == 2 for m in members), 30, seen)
    check(balanced, f"three members own two partitions each: {[sorted(m.assigned) for m in members]}")
    # Produced once the group is stable: without commits, a rebalance while reading would
    # rightly hand records to a second member.
    topic_with_records(topic, 600, create=False)
    poll_until(members, lambda: len(seen) >= 600, 30, seen)
    check(len(seen) == 600 and len(set(seen)) == 600, f"600 records consumed exactly once across the members ({len(seen)} read)")
    for m in members:
        m.consumer.commit(asynchronous=False)

    leaving = members.pop()
    moved = set(leaving.assigned)
    leaving.consumer.close()
    started = time.time()
    took_over = poll_until(members, lambda: owned_exactly_once(members), 15)
    check(took_over, f"a member left and its partitions {sorted(moved)} moved in {time.time() - started:.1f}s: {[sorted(m.assigned) for m in members]}")
    for m in members:
        m.consumer.close()

    # Resume: a new member starts from the committed offsets, so it reads nothing old.
    topic_records = Producer({"bootstrap.servers": BOOTSTRAP})
    for i in range(60):
        topic_records.produce(topic, key=str(i).encode(), value=b"new", partition=i % PARTITIONS)
    topic_records.flush(15)
    resumed = Member(group, topic)
    seen = []
    poll_until([resumed], lambda: len(seen) >= 60, 30, seen)
    check(len(seen) == 60, f"a restarted group resumes from its committed offsets ({len(seen)} records, expected only the 60 new)")
    committed = resumed.consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
    check([tp.offset for tp in committed] == [100] * PARTITIONS, f"committed offsets are 100 per partition: {[tp.offset for tp in committed]}")
    resumed.consumer.close()


def cooperative_rebalances_revoke_only_what_moves():
    topic = f"grp-coop-{SUFFIX}"
    topic_with_records(topic, 60)
    group = f"coop-{SUFFIX}"
    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    first = Member(group, topic, **conf)
    second = Member(group, topic, **conf)
    members = [first, second]
    check(poll_until(members, lambda: owned_exactly_once(members) and all(len(m.assigned) == 3 for m in members), 30),
          f"two cooperative members own three partitions each: {[sorted(m.assigned) for m in members]}")
    before = {id(m): set(m.assigned) for m in members}
    revoked_before = [len(m.revoked) for m in members]
    third = Member(group, topic, **conf)
    members.append(third)
    check(poll_until(members, lambda: owned_exactly_once(members) and all(len(m.assigned) == 2 for m in members), 30),
          f"a third cooperative member gets its share: {[sorted(m.assigned) for m in members]}")
    for m, count in zip(members[:2], revoked_before):
        revoked = set().union(*m.revoked[count:]) if len(m.revoked) > count else set()
        kept = before[id(m)] & m.assigned
        check(not (revoked & kept), f"partitions that stayed ({sorted(kept)}) were never revoked (revoked {sorted(revoked)})")
    for m in members:
        m.consumer.close()


def a_static_member_restarts_without_a_rebalance():
    topic = f"grp-static-{SUFFIX}"
    topic_with_records(topic, 60)
    group = f"static-{SUFFIX}"
    stays = Member(group, topic, **{"group.instance.id": "stays"})
    restarts = Member(group, topic, **{"group.instance.id": "restarts"})
    members = [stays, restarts]
    check(poll_until(members, lambda: owned_exactly_once(members) and all(m.assigned for m in members), 30),
          f"two static members share the partitions: {[sorted(m.assigned) for m in members]}")
    settled = stays.rebalances
    assignment = set(restarts.assigned)
    restarts.consumer.close()  # a static member does not leave the group on close
    again = Member(group, topic, **{"group.instance.id": "restarts"})
    members = [stays, again]
    check(poll_until(members, lambda: again.assigned == assignment, 20),
          f"the restarted static member gets its partitions {sorted(assignment)} back")
    poll_until(members, lambda: False, 2)
    check(stays.rebalances == settled, f"the other member saw no rebalance ({stays.rebalances - settled} callbacks)")
    for m in members:
        m.consumer.close()


def admin_lists_describes_alters_and_deletes_groups():
    topic = f"grp-admin-{SUFFIX}"
    topic_with_records(topic, 30)
    group = f"admin-{SUFFIX}"
    member = Member(group, topic)
    check(poll_until([member], lambda: len(member.assigned) == PARTITIONS, 30), "a member owns the topic")
    listed = {g.group_id: g.state for g in _ADMIN.list_consumer_groups(request_timeout=10).result().valid}
    check(listed.get(group) == ConsumerGroupState.STABLE, f"list_consumer_groups shows the group stable: {listed.get(group)}")
    described = _ADMIN.describe_consumer_groups([group], request_timeout=10)[group].result()
    check(described.state == ConsumerGroupState.STABLE and len(described.members) == 1
          and len(described.members[0].assignment.topic_partitions) == PARTITIONS,
          f"describe_consumer_groups shows the member and its {PARTITIONS} partitions")
    try:
        _ADMIN.delete_consumer_groups([group], request_timeout=10)[group].result()
        check(False, "deleting a group with members is refused")
    except KafkaException as e:
        check(e.args[0].code() == KafkaError.NON_EMPTY_GROUP, f"deleting a group with members is NON_EMPTY_GROUP ({e.args[0].code()})")
    member.consumer.close()

    wanted = [TopicPartition(topic, p, 3) for p in range(PARTITIONS)]
    request = ConsumerGroupTopicPartitions(group, wanted)
    _ADMIN.alter_consumer_group_offsets([request])[group].result(timeout=15)
    listed = _ADMIN.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])])[group].result(timeout=15)
    check([tp.offset for tp in listed.topic_partitions] == [3] * PARTITIONS,
          f"alter_consumer_group_offsets then list_consumer_group_offsets: {[tp.offset for tp in listed.topic_partitions]}")
    resumed = Member(group, topic)
    seen = []
    poll_until([resumed], lambda: len(seen) >= 12, 30, seen)
    check(sorted(o for _, o in seen) == sorted([3, 4] * PARTITIONS), f"a member resumes at the altered offsets: {sorted(seen)}")
    resumed.consumer.close()
    _ADMIN.delete_consumer_groups([group], request_timeout=10)[group].result()
    remaining = {g.group_id for g in _ADMIN.list_consumer_groups(request_timeout=10).result().valid}
    check(group not in remaining, "delete_consumer_groups removes an empty group")
    again = _ADMIN.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])])[group].result(timeout=15)
    check(again.topic_partitions[0].offset < 0, "a deleted group's offsets are gone")
    internal = _ADMIN.list_topics(timeout=10).topics["__consumer_offsets"]
    check(len(internal.partitions) == 50, "__consumer_offsets has its 50 partitions")
    for what, action in [
        ("created", lambda: _ADMIN.create_topics([NewTopic("__consumer_offsets", 1, 1)])["__consumer_offsets"].result(timeout=15)),
        ("deleted", lambda: _ADMIN.delete_topics(["__consumer_offsets"])["__consumer_offsets"].result(timeout=15)),
    ]:
        try:
            action()
            check(False, f"the internal topic cannot be {what}")
        except KafkaException as e:
            check(e.args[0].code() == KafkaError.INVALID_REQUEST, f"the internal topic cannot be {what} ({e.args[0].str()})")


def main():
    admin_lists_describes_alters_and_deletes_groups()
    three_members_share_the_partitions()
    cooperative_rebalances_revoke_only_what_moves()
    a_static_member_restarts_without_a_rebalance()
    print("confluent-kafka groups: all checks passed")


if __name__ == "__main__":
    main()
