#!/usr/bin/env bash
# Starts a local three-node Portcullis cluster in dev mode (demo credentials, the shared
# dev cluster secret) and keeps it in the foreground; Ctrl-C stops all three.
#
#   node 1: http://127.0.0.1:8081  gossip 127.0.0.1:7901  region dev-1
#   node 2: http://127.0.0.1:8082  gossip 127.0.0.1:7902  region dev-2
#   node 3: http://127.0.0.1:8083  gossip 127.0.0.1:7903  region dev-3
#
# State lives in ./portcullis-dev-cluster/n{1,2,3}; delete it to start from scratch.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${DEV_CLUSTER_BIN:-$root/target/release/portcullis}"
if [[ -z "${DEV_CLUSTER_BIN:-}" ]]; then
  cargo build --release -p portcullis --manifest-path "$root/Cargo.toml"
fi
state="${DEV_CLUSTER_DIR:-$PWD/portcullis-dev-cluster}"
seeds="127.0.0.1:7901,127.0.0.1:7902,127.0.0.1:7903"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM

for i in 1 2 3; do
  mkdir -p "$state/n$i"
  PORTCULLIS_LISTEN="127.0.0.1:808$i" \
  PORTCULLIS_ISSUER="http://127.0.0.1:8080" \
  PORTCULLIS_DATA_DIR="$state/n$i" \
  PORTCULLIS_CLUSTER__NODE_ID="n$i" \
  PORTCULLIS_CLUSTER__GOSSIP_LISTEN="127.0.0.1:790$i" \
  PORTCULLIS_CLUSTER__SEEDS="$seeds" \
  PORTCULLIS_CLUSTER__REGION="dev-$i" \
    "$bin" serve >"$state/n$i.out" 2>"$state/n$i.log" &
  pids+=($!)
done

for i in 1 2 3; do
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:808$i/readyz" >/dev/null && break
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:808$i/readyz" >/dev/null || { echo "node $i did not become ready; see $state/n$i.log"; exit 1; }
done
echo "three nodes ready on 127.0.0.1:8081-8083 (logs in $state/n*.log); Ctrl-C to stop"
wait
