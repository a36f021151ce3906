#!/usr/bin/env bash
# kcat 1.7.1 on librdkafka 2.0.2 (Debian's): an old client against $STRATA_BOOTSTRAP.
set -euo pipefail
B="${STRATA_BOOTSTRAP:-127.0.0.1:9092}"
SUFFIX=$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
ok() { echo "ok - $*"; }
fail() { echo "FAILED: $*"; exit 1; }

kcat -V | head -n1
kcat -b "$B" -L -m 10 | grep -q "1 brokers:" || fail "kcat -L lists one broker"
ok "metadata listing"

for codec in none gzip snappy lz4; do
  topic="kcat-$codec-$SUFFIX"
  expected=$(for i in $(seq 1 500); do echo "key$i:value $i $codec"; done)
  # The topic is auto-created by the producer's metadata request.
  printf '%s\n' "$expected" | kcat -b "$B" -t "$topic" -P -K: -z "$codec" -X topic.request.required.acks=all -m 20 \
    || fail "produce with $codec"
  got=$(kcat -b "$B" -t "$topic" -C -o beginning -e -q -K: -f '%k:%s\n' -m 20)
  [ "$got" = "$expected" ] || fail "consumed records differ for $codec"
  offsets=$(kcat -b "$B" -t "$topic" -C -o beginning -e -q -f '%o\n' -m 20 | tr '\n' ' ')
  [ "$offsets" = "$(seq -s ' ' 0 499) " ] || fail "offsets for $codec are 0..499"
  ok "500 keyed records round-trip with $codec at offsets 0..499"
done
echo "kcat compat: all checks passed"
