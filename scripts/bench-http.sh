#!/usr/bin/env bash
# HTTP benchmark of one Portcullis node: /v1/check with distinct and repeated tokens and
# client_credentials grants, driven by wrk over keep-alive, plus the in-process raw
# Ed25519 verify rate from criterion, so the ratio of the two comes from one run.
#
# The node runs with `workers = 1` pinned to one CPU (NODE_CPU) and wrk on another
# (LOAD_CPU), so the node uses exactly one core and the ratio compares it with one
# core's raw verify rate. See docs/benchmarks.md for what each figure means.
#
# The release binary and the criterion bench are (re)built first if the source changed.
#
# Settings (environment): DURATION (seconds per wrk run, default 10), TOKENS (distinct
# tokens minted, default 20000), CONNECTIONS (wrk keep-alive connections, default 32),
# NODE_CPU (default 0), LOAD_CPU (default 1), SKIP_CRITERION=1 to reuse the last
# criterion result in target/criterion.

set -euo pipefail

DURATION="${DURATION:-10}"
TOKENS="${TOKENS:-20000}"
CONNECTIONS="${CONNECTIONS:-32}"
NODE_CPU="${NODE_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/bench/wrk.sh
source "$ROOT/scripts/bench/wrk.sh"
HELPERS="$ROOT/scripts/bench"
BIN="$ROOT/target/release/portcullis"
WORK="$(mktemp -d -t portcullis-bench.XXXXXX)"
NODE_PID=""
CHILD_PID=""

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench-http: %s\n' "$*" >&2; exit 1; }

stop_node() {
  if [[ -n "$NODE_PID" ]] && kill -0 "$NODE_PID" 2>/dev/null; then
    kill "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
  fi
  NODE_PID=""
}

cleanup() {
  if [[ -n "$CHILD_PID" ]]; then
    kill "$CHILD_PID" 2>/dev/null || true
  fi
  stop_node
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs a long command in the background and waits for it, so that an interrupt is
# handled at once (bash defers traps until a foreground command ends).
run_child() {
  "$@" &
  CHILD_PID=$!
  local status=0
  wait "$CHILD_PID" || status=$?
  CHILD_PID=""
  return "$status"
}

# --- prerequisites ------------------------------------------------------------------

prerequisites() {
  command -v curl >/dev/null || die "curl is required"
  command -v python3 >/dev/null || die "python3 is required"
  command -v taskset >/dev/null || die "taskset (util-linux) is required"
  ensure_wrk
  local cpus
  cpus=$(nproc)
  ((cpus >= 2)) || die "needs at least 2 CPUs to keep the node and wrk apart (found $cpus)"
  # Always asked for, so the figures are for the current source; a no-op when up to date.
  log "building the release binary"
  quietly cargo build --release -p portcullis
  [[ -x "$BIN" ]] || die "no binary at $BIN"
}

# Runs a cargo command from the repository root, showing its output only if it fails.
quietly() {
  local out="$WORK/cargo.log"
  (cd "$ROOT" && "$@") >"$out" 2>&1 || { cat "$out" >&2; die "failed: $*"; }
}

# --- in-process bound ---------------------------------------------------------------

# Prints the elements/s of one criterion benchmark from its saved estimates.
criterion_rate() {
  python3 - "$1" <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    estimates = json.load(f)
ns = (estimates.get("slope") or estimates["mean"])["point_estimate"]
print(f"{1e9 / ns:.0f}")
PY
}

raw_verify_rates() {
  local target
  target=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  if [[ "${SKIP_CRITERION:-0}" != 1 ]]; then
    log "criterion: raw Ed25519 verify on CPU $NODE_CPU (the node's core, node not running)"
    quietly cargo bench -p portcullis --bench verify --no-run
    (cd "$ROOT" && taskset -c "$NODE_CPU" cargo bench -p portcullis --bench verify -- '^raw' |
      grep -E '^raw|thrpt:' >&2)
  fi
  local dalek="$target/criterion/raw/ed25519_dalek_verify/new/estimates.json"
  local compact="$target/criterion/raw/ed25519_compact_verify/new/estimates.json"
  local batch="$target/criterion/raw_batch/ed25519_batch_64/new/estimates.json"
  [[ -f "$dalek" && -f "$compact" && -f "$batch" ]] ||
    die "no criterion result; run without SKIP_CRITERION"
  RAW_DALEK=$(criterion_rate "$dalek")
  RAW_COMPACT=$(criterion_rate "$compact")
  # The batch estimate is per batch of 64; report signatures per second.
  RAW_BATCH=$(( $(criterion_rate "$batch") * 64 ))
}

# --- the node -----------------------------------------------------------------------

write_config() {
  local minted
  minted=$("$BIN" mint-client-secret)
  CLIENT_ID="bench-client"
  CLIENT_SECRET=$(sed -n 's/^client_secret = //p' <<<"$minted")
  local hash
  hash=$(sed -n 's/^secret_hash *= //p' <<<"$minted")
  [[ -n "$CLIENT_SECRET" && -n "$hash" ]] || die "cannot parse mint-client-secret output"
  BASIC=$(printf '%s:%s' "$CLIENT_ID" "$CLIENT_SECRET" | base64 -w0)

  CONFIG="$WORK/portcullis.toml"
  cat >"$CONFIG" <<EOF
# Temporary configuration written by scripts/bench-http.sh.
issuer = "https://auth.bench.invalid"
audiences = ["bench-api"]
data_dir = "$WORK/data"
listen = "127.0.0.1:0"
workers = 1

[tokens]
# Long enough that no minted token expires during the run.
access_lifetime = "1h"

# Budgets and issuance caps stay on (accounting is part of what is measured) but high
# enough that no request is refused: every bench token is one lineage, the client's.
[rate_limits]
per_minute = 1000000000

[heuristics]
issuance_per_address = 1000000000
issuance_per_client = 1000000000

[[clients]]
id = "$CLIENT_ID"
secret_hash = $hash
grants = ["client_credentials"]
scopes = ["orders:read", "orders:write"]
default_scopes = ["orders:read"]
EOF
}

# Starts the node pinned to NODE_CPU with extra environment "$@"; sets BASE_URL.
start_node() {
  local out="$WORK/node.out"
  : >"$out"
  env "$@" PORTCULLIS_LOG=warn taskset -c "$NODE_CPU" "$BIN" serve --config "$CONFIG" \
    >"$out" 2>"$WORK/node.err" &
  NODE_PID=$!

  local deadline=$((SECONDS + 30))
  BASE_URL=""
  while [[ -z "$BASE_URL" ]]; do
    kill -0 "$NODE_PID" 2>/dev/null || { cat "$WORK/node.err" >&2; die "node exited"; }
    ((SECONDS < deadline)) || die "node did not print its address within 30s"
    BASE_URL=$(sed -n 's/^portcullis: listening on //p' "$out")
    [[ -n "$BASE_URL" ]] || sleep 0.05
  done
  until curl -fsS "$BASE_URL/healthz" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "node not healthy within 30s"
    sleep 0.05
  done
  log "node up at $BASE_URL (pid $NODE_PID, CPU $NODE_CPU, workers = 1) $*"
}

# --- load ---------------------------------------------------------------------------

# CPU time the node has used so far, in clock ticks (all threads, user + system).
node_ticks() {
  awk '{print $14 + $15}' "/proc/$NODE_PID/stat"
}

# Runs wrk on LOAD_CPU; "$1" names the run, the rest are wrk arguments. Appends
# "name req/s p50 p99 node-cpu-share" to the results and fails if any response was not
# 2xx. The node's CPU share shows whether it had its core to itself: well under 100%
# means another process ran on NODE_CPU (or the node was waiting) and the run is suspect.
run_wrk() {
  local name="$1"
  shift
  local out="$WORK/wrk-$name.txt"
  log "wrk: $name (${DURATION}s, $CONNECTIONS connections, 1 thread on CPU $LOAD_CPU)"
  local ticks_before started
  ticks_before=$(node_ticks)
  started=$(date +%s.%N)
  run_child taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" \
    >"$out"
  local share
  share=$(awk -v t0="$ticks_before" -v t1="$(node_ticks)" -v s0="$started" \
    -v s1="$(date +%s.%N)" -v hz="$(getconf CLK_TCK)" \
    'BEGIN {printf "%.0f", 100 * (t1 - t0) / hz / (s1 - s0)}')
  sed 's/^/    /' "$out" >&2
  log "node CPU share during $name: $share% of one core"
  if grep -q 'Non-2xx' "$out"; then
    die "$name: some responses were not 2xx; figures would be meaningless"
  fi
  local rps p50 p99
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
  p50=$(awk '$1 == "50%" {print $2}' "$out")
  p99=$(awk '$1 == "99%" {print $2}' "$out")
  printf '%s %s %s %s %s\n' "$name" "$rps" "$p50" "$p99" "$share" >>"$WORK/results"
}

main() {
  prerequisites
  raw_verify_rates
  write_config

  # Cache off: every request pays the full strict path, whatever the token order.
  start_node PORTCULLIS_VERIFY_CACHE_ENTRIES=0
  log "minting $TOKENS distinct tokens over keep-alive"
  run_child taskset -c "$LOAD_CPU" python3 "$HELPERS/mint_tokens.py" \
    "$BASE_URL" "$CLIENT_ID" "$CLIENT_SECRET" "$TOKENS" "$WORK/tokens.txt"
  run_wrk check_distinct -s "$HELPERS/check_distinct.lua" "$BASE_URL/v1/check" \
    -- "$WORK/tokens.txt"
  stop_node

  # Cache on (the default): the usual case, a client reusing its token.
  start_node
  local token
  token=$(head -n 1 "$WORK/tokens.txt")
  run_wrk check_repeated -H "Authorization: Bearer $token" "$BASE_URL/v1/check"
  run_wrk client_credentials -s "$HELPERS/client_credentials.lua" "$BASE_URL/oauth/token" \
    -- "$BASIC"
  stop_node

  # The same repeated-token run with budget accounting off: its cost per request.
  start_node PORTCULLIS_RATE_LIMITS__ENABLED=false
  run_wrk check_repeated_no_budgets -H "Authorization: Bearer $token" "$BASE_URL/v1/check"
  stop_node

  report
}

report() {
  column() { awk -v run="$1" -v n="$2" '$1 == run {print $n}' "$WORK/results"; }
  echo
  echo "Portcullis HTTP benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs"
  echo "node: 1 worker pinned to CPU $NODE_CPU; wrk: 1 thread, $CONNECTIONS connections," \
    "CPU $LOAD_CPU; ${DURATION}s per run"
  echo
  printf '%-20s %9s %9s %9s %9s %14s\n' "run" "req/s" "p50" "p99" "node CPU" "req/CPU-second"
  while read -r name rps p50 p99 share; do
    printf '%-20s %9s %9s %9s %8s%% %14.0f\n' "$name" "$rps" "$p50" "$p99" "$share" \
      "$(awk -v r="$rps" -v s="$share" 'BEGIN {print (s > 0 ? 100 * r / s : 0)}')"
  done <"$WORK/results"
  echo
  printf '%-36s %10s\n' "raw ed25519-dalek verify/s, 1 core" "$RAW_DALEK"
  printf '%-36s %10s\n' "raw ed25519-compact verify/s, 1 core" "$RAW_COMPACT"
  printf '%-36s %10s\n' "raw batch-of-64 verify/s, 1 core" "$RAW_BATCH"
  echo
  echo "Cores the node used: at most 1 (taskset CPU $NODE_CPU, workers = 1); 'node CPU' is the"
  echo "share of that core it actually got. Ratios are given per wall-clock second against"
  echo "one core, and per CPU-second the node used. A share well under 100% means the node"
  echo "was not saturated or something else ran on its core: re-run before trusting it."
  python3 - "$(column check_distinct 2)" "$(column check_distinct 5)" \
    "$(column check_repeated 2)" "$(column client_credentials 2)" \
    "$RAW_DALEK" "$RAW_COMPACT" "$RAW_BATCH" "$(column check_repeated_no_budgets 2)" <<'PY'
import sys
distinct, share, repeated, grants, dalek, compact, batch, unmetered = (
    float(x) for x in sys.argv[1:])
per_cpu = distinct * 100 / share if share else 0.0
def verdict(ok):
    return "met" if ok else "MISSED"
print(f"/v1/check distinct ÷ (raw dalek verify × 1 core):      {distinct / dalek:6.1%}"
      f"  goal ≥ 70%: {verdict(distinct >= 0.7 * dalek)}")
print(f"/v1/check distinct per CPU-second ÷ raw dalek verify:  {per_cpu / dalek:6.1%}")
print(f"/v1/check distinct ÷ (raw compact verify × 1 core):    {distinct / compact:6.1%}"
      "  (jwt-simple's backend, for comparison)")
print(f"/v1/check distinct ÷ (raw batch-of-64 verify × 1 core): {distinct / batch:6.1%}"
      "  (the gate batches concurrent checks: its own bound)")
print(f"/v1/check repeated ÷ (raw dalek verify × 1 core):      {repeated / dalek:6.1f}×"
      f"  goal > 1×: {verdict(repeated > dalek)}")
print(f"client_credentials grants/s, 1 core:                  {grants:7.0f}"
      f"  goal ≥ 5000: {verdict(grants >= 5000)}")
cost = 1 - repeated / unmetered if unmetered else 0.0
print(f"budget accounting cost on /v1/check (repeated token):   {cost:6.1%}"
      f"  goal ≤ 10%: {verdict(cost <= 0.10)}")
PY
}

main "$@"
