#!/usr/bin/env bash
# Cluster benchmarks: real portcullis processes on loopback addresses, started by the
# cluster-tests harness, measured by the cargo examples in cluster-tests/examples/:
#
#   propagation     revoke on node 1 → every other node rejects, 3 and 5 nodes (p50/p99)
#   burst           10,000 revocations on one node → enforced everywhere
#   million         1,000,000 revocations: RSS per node, fresh-node catch-up, /v1/check
#                   throughput against an empty deny list (wrk)
#   gossip_traffic  gossip bytes and datagrams per node, idle and at 100 revocations/s
#
# It builds the release binary and the examples, then runs each example with
# CLUSTER_TESTS_BIN pointing at target/release/portcullis, bounded by a timeout, and
# saves every output under target/bench-cluster/<UTC time>/. See docs/benchmarks.md
# ("Cluster") for what each figure means. The whole run takes about 10 minutes.
#
# Usage: scripts/bench-cluster.sh [EXAMPLE…]   (default: all four, in the order above)
# The examples read optional settings from the environment (BENCH_REVOCATIONS,
# BENCH_BURST, BENCH_MILLION, BENCH_WRK_SECONDS, …; see each example's header).

set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/bench/wrk.sh
source "$ROOT/scripts/bench/wrk.sh"
BIN="$ROOT/target/release/portcullis"
ALL=(propagation burst million gossip_traffic)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench-cluster: %s\n' "$*" >&2; exit 1; }

# Seconds each example may run before it and its nodes are killed.
limit() {
  case "$1" in
    propagation) echo 300 ;;
    burst) echo 180 ;;
    million) echo 720 ;;
    gossip_traffic) echo 240 ;;
    *) die "unknown example: $1 (known: ${ALL[*]})" ;;
  esac
}

# shellcheck source=scripts/bench/child.sh
source "$ROOT/scripts/bench/child.sh"

prerequisites() {
  command -v taskset >/dev/null || die "taskset (util-linux) is required"
  command -v timeout >/dev/null || die "timeout (coreutils) is required"
  ensure_wrk
  (($(nproc) >= 2)) || die "needs at least 2 CPUs to keep a node and wrk apart"
  log "building the release binary and the benchmark examples"
  (cd "$ROOT" && cargo build --release -p portcullis --quiet)
  (cd "$ROOT" && cargo build --release -p cluster-tests --examples --quiet)
  [[ -x "$BIN" ]] || die "no binary at $BIN"
}

# Runs one example; its stdout goes to the terminal and to OUT/NAME.txt, its stderr
# (node logs if it fails) to OUT/NAME.err.
run() {
  local name="$1"
  local seconds
  seconds=$(limit "$name")
  log "$name (at most ${seconds}s)"
  : >"$OUT/$name.txt"
  (
    cd "$ROOT"
    exec timeout --kill-after=10 "$seconds" \
      cargo run --release --quiet -p cluster-tests --example "$name"
  ) >"$OUT/$name.txt" 2>"$OUT/$name.err" &
  CHILD_PID=$!
  local status=0
  tail --pid="$CHILD_PID" -n +1 -f "$OUT/$name.txt" &
  local tailer=$!
  wait "$CHILD_PID" || status=$?
  CHILD_PID=""
  wait "$tailer" 2>/dev/null || true
  if ((status != 0)); then
    tail -n 40 "$OUT/$name.err" >&2
    die "$name failed (status $status); full log in $OUT/$name.err"
  fi
}

main() {
  local names=("$@")
  ((${#names[@]})) || names=("${ALL[@]}")
  for name in "${names[@]}"; do limit "$name" >/dev/null; done
  prerequisites

  OUT="$ROOT/target/bench-cluster/$(date -u +%Y%m%dT%H%MZ)"
  mkdir -p "$OUT"
  export CLUSTER_TESTS_BIN="$BIN"
  {
    echo "Portcullis cluster benchmarks, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "$(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1))," \
      "$(free -m | awk '/^Mem:/ {print $2}') MiB RAM, Linux $(uname -r)," \
      "load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "commit $(git -C "$ROOT" rev-parse --short HEAD)"
  } | tee "$OUT/machine.txt"

  for name in "${names[@]}"; do
    run "$name"
  done

  echo
  echo "Goals (outputs in $OUT):"
  for name in "${names[@]}"; do
    grep -h '^goal' "$OUT/$name.txt" || true
  done
}

main "$@"
