"""A first produce-throughput figure until `strata bench` exists (issue "Benchmarks").

Starts nothing: point it at a running broker. Produces COUNT records of SIZE bytes over
PARTITIONS partitions with librdkafka (confluent-kafka) and prints MB/s and records/s.

    python bench/quick_produce.py --bootstrap 127.0.0.1:9092 --count 500000 --size 1024 --acks 1
"""

import argparse
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--count", type=int, default=500_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--acks", default="1")
    ap.add_argument("--compression", default="none")
    args = ap.parse_args()

    topic = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(timeout=30)
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": args.acks,
        "compression.type": args.compression,
        "linger.ms": 5,
        "batch.size": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "queue.buffering.max.messages": 1_000_000,
    })
    payload = b"x" * args.size
    errors = []
    start = time.perf_counter()
    for i in range(args.count):
        while True:
            try:
                producer.produce(topic, payload, partition=i % args.partitions,
                                 on_delivery=lambda err, _m: err and errors.append(err))
                break
            except BufferError:
                producer.poll(0.001)
    producer.flush(300)
    elapsed = time.perf_counter() - start
    mb = args.count * args.size / 1e6
    print(f"records={args.count} size={args.size} partitions={args.partitions} acks={args.acks} "
          f"compression={args.compression} errors={len(errors)} elapsed_s={elapsed:.2f} "
          f"MB_per_s={mb / elapsed:.1f} records_per_s={args.count / elapsed:.0f}")


if __name__ == "__main__":
    main()
