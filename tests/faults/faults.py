"""Fault runs with a history check: three `strata server` nodes, each in its own network
namespace on one bridge, a replicated topic under an idempotent acks=all producer and a
consumer group, and faults injected one after another while they run:

  kill9      the leader of a partition dies without a word, and restarts
  sigstop    the leader hangs (SIGSTOP) for longer than its session, then resumes
  partition  the leader is cut off from the other nodes (quorum and followers) by iptables,
             while clients can still reach it, then the link heals
  wipe       a follower dies, its partition data is deleted, and it restarts empty
  rolling    every node in turn is stopped with SIGTERM and restarted
  store      the shared object store refuses every write (a read-only mount in each
             node's mount namespace) for longer than a session, then recovers
  elr        one follower dies, records are acknowledged by the two left, then the other
             follower and the leader die too (the quorum with them); the second follower
             and then the first restart, and the second leads without the old leader: it
             left the ISR below min ISR, so it is an eligible leader replica (KIP-966)

The topic tiers quickly (small segments, a 3 s upload lag, little kept locally), so the
faults meet tiered data: a wiped follower starts at the tiered end, and the final read
comes mostly from the object store.

Every send, acknowledgement, consumed record and commit is written to a history file
(JSON lines). At the end the history is checked:

  - every acknowledged record is stored at its acknowledged offset (lost = 0)
  - no value is stored twice (idempotence; duplicated = 0)
  - offsets are dense from each partition's start (gaps = 0)
  - within one assignment, a consumer never goes backwards in a partition (regressions = 0)
  - the group's committed offsets never go backwards (commit regressions = 0)
  - no send failed with an error the client could not retry (failed sends = 0)
  - the group read every acknowledged record (within two minutes of the last send)

and the counts are printed. Exits 1 on any anomaly. Needs root (ip netns, iptables) and the
venv's confluent-kafka. `--short` is the CI version (one round of each fault, shorter
waits); without it, `--rounds` rounds of each (documented in docs/operations.md).
"""

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TOPIC = "faults"
PARTITIONS = 3
GROUP = "faults-checker"
SESSION_MS = 9_000  # the broker session timeout: fencing comes after it
# Tier within seconds, and keep little locally, so the faults meet tiered data.
BROKER_CONFIG = ('"strata.tiering.upload.max.lag.ms" = "3000"\n'
                 '"remote.log.manager.task.interval.ms" = "1000"\n')
TOPIC_CONFIG = {"min.insync.replicas": "2", "segment.bytes": "65536",
                "local.retention.bytes": "65536"}


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


class Network:
    """A bridge in the root namespace and one namespace per node, joined by veth pairs.
    Names carry a tag so that concurrent runs do not collide."""

    def __init__(self, nodes):
        self.tag = f"{os.getpid() % 10000:04d}"
        self.subnet = f"10.213.{os.getpid() % 250}"
        self.bridge = f"sfb{self.tag}"
        self.host_ip = f"{self.subnet}.254"
        self.namespaces = {}
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.host_ip}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for node in nodes:
            ns = f"strata-f{self.tag}-{node}"
            outside, inside = f"sfv{self.tag}{node}", f"sfp{self.tag}{node}"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
            sh("ip", "link", "set", inside, "netns", ns)
            sh("ip", "link", "set", outside, "master", self.bridge)
            sh("ip", "link", "set", outside, "up")
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{self.ip(node)}/24", "dev", inside)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", inside, "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
            self.namespaces[node] = ns

    def ip(self, node):
        return f"{self.subnet}.{10 + node}"

    def isolate(self, node, others):
        """Drops everything between `node` and the other nodes; clients still reach it."""
        ns = self.namespaces[node]
        for other in others:
            peer = self.ip(other)
            sh("ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-s", peer, "-j", "DROP")
            sh("ip", "netns", "exec", ns, "iptables", "-A", "OUTPUT", "-d", peer, "-j", "DROP")

    def heal(self, node):
        sh("ip", "netns", "exec", self.namespaces[node], "iptables", "-F")

    def close(self):
        for ns in self.namespaces.values():
            sh("ip", "netns", "del", ns, check=False)
        sh("ip", "link", "del", self.bridge, check=False)


class Cluster:
    """Three combined controller+broker nodes, one per namespace."""

    def __init__(self, strata, net, root, nodes=(1, 2, 3)):
        self.strata, self.net, self.root, self.nodes = strata, net, root, nodes
        self.quorum = ",".join(f"{n}@{net.ip(n)}:9093" for n in nodes)
        self.processes = {}
        for node in nodes:
            self.start(node)
        self.bootstrap = ",".join(f"{net.ip(n)}:9092" for n in nodes)

    def data_dir(self, node):
        return os.path.join(self.root, f"node{node}")

    def start(self, node):
        ip = self.net.ip(node)
        config = os.path.join(self.root, "strata.toml")
        with open(config, "w") as f:
            f.write(BROKER_CONFIG)
        logfile = open(os.path.join(self.root, f"node{node}.log"), "a")
        self.processes[node] = subprocess.Popen(
            ["ip", "netns", "exec", self.net.namespaces[node], self.strata, "server",
             "--node-id", str(node), "--data-dir", self.data_dir(node),
             "--kafka-listen", f"{ip}:9092", "--admin-listen", f"{ip}:9644",
             "--controller-listen", f"{ip}:9093", "--controller-quorum", self.quorum,
             # One object store for the cluster, as S3 would be: tiered data committed by
             # one leader is read by whichever replica needs it later.
             "--object-store", f"file://{self.objects()}", "--config", config],
            stdout=subprocess.DEVNULL, stderr=logfile, env={**os.environ, "NO_COLOR": "1"})

    def objects(self):
        return os.path.join(self.root, "objects")

    def in_mounts(self, node, *command):
        """Runs `command` in the mount namespace of node's process (`ip netns exec` gave it
        its own)."""
        sh("nsenter", "-t", str(self.processes[node].pid), "-m", *command)

    def refuse_store_writes(self, node):
        self.in_mounts(node, "mount", "--bind", self.objects(), self.objects())
        self.in_mounts(node, "mount", "-o", "remount,ro,bind", self.objects())

    def allow_store_writes(self, node):
        self.in_mounts(node, "umount", self.objects())

    def metric(self, node, name):
        with urllib.request.urlopen(f"http://{self.net.ip(node)}:9644/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return 0.0

    def signal(self, node, sig):
        self.processes[node].send_signal(sig)

    def kill9(self, node):
        self.processes[node].kill()
        self.processes[node].wait()

    def terminate(self, node):
        self.processes[node].terminate()
        code = self.processes[node].wait(timeout=60)
        if code != 0:
            raise RuntimeError(f"node {node} exited {code} on SIGTERM")

    def stop_all(self):
        for node, process in self.processes.items():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


class History:
    """Every event of the run, appended as one JSON line, and kept for the check."""

    def __init__(self, path):
        self.file = open(path, "w")
        self.lock = threading.Lock()
        self.events = []

    def record(self, kind, **fields):
        event = {"t": time.time(), "kind": kind, **fields}
        with self.lock:
            self.events.append(event)
            self.file.write(json.dumps(event) + "\n")

    def close(self):
        self.file.close()


def partition_state(bootstrap, timeout=10):
    """Partition -> (leader, sorted ISR) as the cluster reports it."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = admin.list_topics(TOPIC, timeout=timeout).topics
    if TOPIC not in topics or topics[TOPIC].error is not None:
        return {}
    return {p.id: (p.leader, sorted(p.isrs)) for p in topics[TOPIC].partitions.values()}


def wait_until(what, condition, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if condition():
                return
        except Exception:  # a node being down answers with errors; keep asking
            pass
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting until {what}")


def all_in_sync(cluster):
    """Every node's own view shows every partition led and its ISR whole: the view of a
    node that just restarted, or was cut off, is current once it shows that too."""
    for node in cluster.nodes:
        state = partition_state(f"{cluster.net.ip(node)}:9092")
        whole = sorted(cluster.nodes)
        if len(state) != PARTITIONS or not all(l >= 0 and isr == whole for l, isr in state.values()):
            return False
    return True


def ready(cluster, node):
    """The node's readiness endpoint answers 200: registered and serving its partitions."""
    try:
        with urllib.request.urlopen(f"http://{cluster.net.ip(node)}:9644/readyz", timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


class Workload:
    """An idempotent acks=all producer and a group consumer that commits, both recording."""

    def __init__(self, bootstrap, history):
        self.bootstrap, self.history = bootstrap, history
        self.stop_producing, self.stop_consuming = threading.Event(), threading.Event()
        self.producer = threading.Thread(target=self.produce, daemon=True)
        self.consumer = threading.Thread(target=self.consume, daemon=True)
        self.consumed = set()

    def start(self):
        self.producer.start()
        self.consumer.start()

    def stop(self, catch_up_seconds):
        """Stops producing, gives the group time to read everything acknowledged, then stops it."""
        self.stop_producing.set()
        self.producer.join(timeout=330)
        acknowledged = {e["value"] for e in self.history.events if e["kind"] == "ack"}
        deadline = time.time() + catch_up_seconds
        while time.time() < deadline and not acknowledged <= self.consumed:
            time.sleep(0.5)
        self.stop_consuming.set()
        self.consumer.join(timeout=120)

    def produce(self):
        producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all",
                             "enable.idempotence": True, "message.timeout.ms": 300_000,
                             "linger.ms": 5})

        def delivered(err, msg, value):
            if err is None:
                self.history.record("ack", value=value, partition=msg.partition(), offset=msg.offset())
            else:
                self.history.record("send_failed", value=value, error=str(err),
                                    retriable=err.retriable())

        i = 0
        while not self.stop_producing.is_set():
            value = f"v{i}"
            self.history.record("send", value=value)
            while True:
                try:
                    producer.produce(TOPIC, value=value.encode(), partition=i % PARTITIONS,
                                     on_delivery=lambda err, msg, v=value: delivered(err, msg, v))
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
            i += 1
            time.sleep(0.004)
        remaining = producer.flush(300)
        self.history.record("producer_closed", unflushed=remaining)

    def consume(self):
        generation = [0]

        def assigned(consumer, partitions):
            generation[0] += 1
            self.history.record("assigned", generation=generation[0],
                                partitions=[p.partition for p in partitions])

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": GROUP,
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "session.timeout.ms": 30_000})
        consumer.subscribe([TOPIC], on_assign=assigned)
        last_commit = time.time()
        while not self.stop_consuming.is_set():
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                self.consumed.add(message.value().decode())
                self.history.record("consumed", generation=generation[0], partition=message.partition(),
                                    offset=message.offset(), value=message.value().decode())
            if time.time() - last_commit > 1:
                last_commit = time.time()
                try:
                    for tp in consumer.commit(asynchronous=False) or []:
                        if tp.error is None and tp.offset >= 0:
                            self.history.record("committed", partition=tp.partition, offset=tp.offset)
                except Exception as e:  # NO_OFFSET when nothing new; others are retried later
                    self.history.record("commit_failed", error=str(e))
        consumer.close()


def read_everything(bootstrap):
    """(partition, offset) -> value for every record below each partition's high watermark."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "faults-reader",
                         "enable.auto.commit": False})
    expected = 0
    assignment = []
    for p in range(PARTITIONS):
        low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)
        expected += high
        assignment.append(TopicPartition(TOPIC, p, OFFSET_BEGINNING))
    consumer.assign(assignment)
    stored = {}
    deadline = time.time() + 120
    while len(stored) < expected and time.time() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            stored[(message.partition(), message.offset())] = message.value().decode()
    consumer.close()
    return stored, expected


def check(history, stored):
    """The anomaly counts of a run."""
    events = history.events
    counts = collections.Counter()
    acks = [e for e in events if e["kind"] == "ack"]
    counts["sent"] = sum(1 for e in events if e["kind"] == "send")
    counts["acknowledged"] = len(acks)
    counts["failed sends"] = sum(1 for e in events if e["kind"] == "send_failed")
    values = collections.Counter(stored.values())
    # librdkafka now and then acknowledges a retried idempotent batch without its offset (it
    # knows the batch was persisted, not where): such a record must be stored, once.
    known = [a for a in acks if a["offset"] is not None]
    counts["acknowledged without an offset"] = len(acks) - len(known)
    counts["lost"] = sum(1 for a in known if stored.get((a["partition"], a["offset"])) != a["value"])
    counts["lost"] += sum(1 for a in acks if a["offset"] is None and values[a["value"]] == 0)
    counts["duplicated"] = sum(n - 1 for n in values.values() if n > 1)
    for p in range(PARTITIONS):
        offsets = sorted(o for (q, o) in stored if q == p)
        counts["gaps"] += sum(1 for a, b in zip(offsets, offsets[1:]) if b != a + 1)
    last_seen = {}
    for e in events:
        if e["kind"] == "consumed":
            key = (e["generation"], e["partition"])
            if key in last_seen and e["offset"] <= last_seen[key]:
                counts["consumer regressions"] += 1
            last_seen[key] = e["offset"]
            if stored.get((e["partition"], e["offset"])) != e["value"]:
                counts["consumed but not stored"] += 1
    committed = {}
    for e in events:
        if e["kind"] == "committed":
            if e["offset"] < committed.get(e["partition"], -1):
                counts["commit regressions"] += 1
            committed[e["partition"]] = max(e["offset"], committed.get(e["partition"], -1))
    counts["consumed"] = sum(1 for e in events if e["kind"] == "consumed")
    consumed = {e["value"] for e in events if e["kind"] == "consumed"}
    counts["acknowledged but never consumed"] = sum(1 for a in acks if a["value"] not in consumed)
    return counts


def failovers(events):
    """Per leader fault (kill9, sigstop, partition): seconds from the fault to the first
    acknowledgement of a record sent to the victim partition after it."""
    sent_at = {e["value"]: e["t"] for e in events if e["kind"] == "send"}
    acks = sorted((e["t"], e["partition"], sent_at.get(e["value"], 0)) for e in events if e["kind"] == "ack")
    measured = []
    faults = [e for e in events if e["kind"] == "fault"]
    for fault, following in zip(faults, faults[1:] + [None]):
        if fault["scenario"] not in ("kill9", "sigstop", "partition"):
            continue
        until = following["t"] if following else float("inf")
        first = next((t for t, p, sent in acks
                      if p == fault["partition"] and fault["t"] <= sent and t < until), None)
        if first is not None:
            measured.append((fault["scenario"], first - fault["t"]))
    return measured


ANOMALIES = ["failed sends", "lost", "duplicated", "gaps", "consumer regressions",
             "consumed but not stored", "commit regressions", "acknowledged but never consumed"]


def leader_of(cluster, partition):
    return partition_state(cluster.bootstrap)[partition][0]


def run_faults(cluster, net, history, scenarios, rounds, hold):
    nodes = list(cluster.nodes)
    for round_ in range(rounds):
        for scenario in scenarios:
            victim_partition = round_ % PARTITIONS
            leader = leader_of(cluster, victim_partition)
            others = [n for n in nodes if n != leader]
            history.record("fault", scenario=scenario, round=round_, node=leader,
                           partition=victim_partition)
            started = time.time()
            if scenario == "kill9":
                log(f"kill -9 node {leader} (leader of partition {victim_partition})")
                cluster.kill9(leader)
                time.sleep(hold)
                cluster.start(leader)
                wait_until(f"node {leader} is ready", lambda: ready(cluster, leader), 120)
            elif scenario == "sigstop":
                log(f"SIGSTOP node {leader} for {hold + SESSION_MS / 1000:.0f} s")
                cluster.signal(leader, signal.SIGSTOP)
                time.sleep(hold + SESSION_MS / 1000)
                cluster.signal(leader, signal.SIGCONT)
            elif scenario == "partition":
                log(f"cutting node {leader} off from nodes {others} for {hold + SESSION_MS / 1000:.0f} s")
                net.isolate(leader, others)
                time.sleep(hold + SESSION_MS / 1000)
                net.heal(leader)
            elif scenario == "wipe":
                follower = others[0]
                history.record("fault_target", node=follower)
                log(f"kill -9 node {follower}, delete its partition data, restart it")
                cluster.kill9(follower)
                for part in ("log", "cache"):
                    shutil.rmtree(os.path.join(cluster.data_dir(follower), part), ignore_errors=True)
                time.sleep(hold)
                cluster.start(follower)
                wait_until(f"node {follower} is ready", lambda: ready(cluster, follower), 120)
            elif scenario == "store":
                os.makedirs(cluster.objects(), exist_ok=True)
                failures = lambda: sum(cluster.metric(n, "strata_tiering_upload_failures_total") for n in nodes)
                before = failures()
                log(f"the object store refuses writes until an upload fails, then {hold + SESSION_MS / 1000:.0f} s more")
                for node in nodes:
                    cluster.refuse_store_writes(node)
                wait_until("an upload fails", lambda: failures() > before, 120)
                time.sleep(hold + SESSION_MS / 1000)
                for node in nodes:
                    cluster.allow_store_writes(node)
                history.record("store_upload_failures", count=failures() - before)
                wait_until("every node uploads again",
                           lambda: all(cluster.metric(n, "strata_tiering_upload_lag_seconds") < 15
                                       for n in nodes), 180)
            elif scenario == "elr":
                first, second = others
                log(f"kill -9 node {first}, then (once the ISR shrank) node {second} and the leader {leader}")
                cluster.kill9(first)
                held = sorted([leader, second])
                wait_until(f"the ISR of partition {victim_partition} is {held}",
                           lambda: partition_state(cluster.bootstrap)[victim_partition][1] == held, 120)
                time.sleep(hold)
                cluster.kill9(second)
                cluster.kill9(leader)
                time.sleep(hold)
                log(f"restart node {second}, then node {first}; node {leader} stays down")
                cluster.start(second)
                cluster.start(first)
                wait_until(f"node {second} leads partition {victim_partition}",
                           lambda: partition_state(f"{cluster.net.ip(second)}:9092")[victim_partition][0] == second,
                           180)
                history.record("eligible_leader", node=second, partition=victim_partition)
                cluster.start(leader)
                wait_until(f"node {leader} is ready", lambda: ready(cluster, leader), 120)
            elif scenario == "rolling":
                for node in nodes:
                    log(f"SIGTERM node {node} and restart it")
                    cluster.terminate(node)
                    cluster.start(node)
                    wait_until(f"node {node} is ready", lambda: ready(cluster, node), 120)
                    wait_until(f"node {node} rejoined every ISR", lambda: all_in_sync(cluster), 180)
            wait_until("every ISR is whole again", lambda: all_in_sync(cluster), 180)
            history.record("healed", scenario=scenario, seconds=time.time() - started)
            log(f"{scenario}: healed after {time.time() - started:.1f} s")
            # Settle before the next fault, so that each failover is measured on its own.
            time.sleep(hold)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strata", default=os.environ.get("STRATA_BIN", "target/debug/strata"))
    parser.add_argument("--short", action="store_true", help="one round of each fault (CI)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scenarios", default="kill9,sigstop,partition,wipe,rolling,store,elr")
    parser.add_argument("--keep", action="store_true", help="keep data, logs and history")
    args = parser.parse_args()
    rounds, hold = (1, 3) if args.short else (args.rounds, 8)
    scenarios = args.scenarios.split(",")
    root = tempfile.mkdtemp(prefix="strata-faults-")
    net = Network([1, 2, 3])
    history = History(os.path.join(root, "history.jsonl"))
    cluster = None
    try:
        cluster = Cluster(os.path.abspath(args.strata), net, root)
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        wait_until("the cluster serves", lambda: len(admin.list_topics(timeout=5).brokers) == 3, 120)
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3, config=TOPIC_CONFIG)],
                            operation_timeout=30)[TOPIC].result(timeout=60)
        wait_until("the topic is in sync", lambda: all_in_sync(cluster), 60)
        workload = Workload(cluster.bootstrap, history)
        workload.start()
        time.sleep(hold)
        run_faults(cluster, net, history, scenarios, rounds, hold)
        time.sleep(hold)
        workload.stop(catch_up_seconds=120)
        stored, expected = read_everything(cluster.bootstrap)
        counts = check(history, stored)
        counts["stored"] = len(stored)
        failover = [e["seconds"] for e in history.events if e["kind"] == "healed"]
        print("\nfault run:", ", ".join(f"{s} x{rounds}" for s in scenarios))
        for name in ["sent", "acknowledged", "acknowledged without an offset", "consumed",
                     "stored"] + ANOMALIES:
            print(f"  {name:>24}: {counts[name]}")
        print(f"  {'longest heal (s)':>24}: {max(failover):.1f}")
        for scenario, seconds in failovers(history.events):
            print(f"  {'failover ' + scenario + ' (s)':>24}: {seconds:.1f}")
        refused = [e["count"] for e in history.events if e["kind"] == "store_upload_failures"]
        if refused:
            print(f"  {'failed uploads (store)':>24}: {', '.join(f'{c:.0f}' for c in refused)}")
        print(f"  history: {history.file.name}")
        bad = [name for name in ANOMALIES if counts[name]] + (["unread"] if len(stored) < expected else [])
        if bad:
            print(f"FAILED: anomalies: {', '.join(bad)} (logs and history under {root})")
            args.keep = True
            return 1
        print("ok - no anomalies")
        return 0
    except BaseException:
        print(f"FAILED: the run stopped (logs and history under {root})")
        args.keep = True
        raise
    finally:
        if cluster is not None:
            cluster.stop_all()
        net.close()
        history.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
