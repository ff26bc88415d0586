#!/usr/bin/env bash
# Attack simulation: plays the abuse Portcullis is built for against real local
# clusters (three nodes, five for one row), every attacker and user connecting from a
# 127.0.0.0/8 source address of its own, and checks each outcome against its goal:
#
#   login       one address, 2,000 guessed logins/min + 50 real users   ≤ 1% hashed, ≥ 99% ok
#   botnet      the same from 500 addresses                             ≤ 5% hashed, ≥ 99% ok
#   revocation  a lineage past 2× its budget on every node              rejected everywhere ≤ 300 ms p99
#   overshoot   admitted past the budget, fast/strict, 3 and 5 nodes    strict 0, fast ≤ (N−1)×R×d
#   accounting  /v1/check with budget accounting on vs off (wrk)        ≤ 10% cost
#   memory      100,000 rotating addresses                              counters within the cap
#
# It builds the release binary and the `attack` example of cluster-tests, runs it under
# a time limit, prints one table and exits non-zero when a goal is missed. Output is
# also saved under target/attack-sim/<UTC time>/. The whole run takes about 7 minutes.
#
# Usage: scripts/attack-sim.sh [SCENARIO…]   (default: all, in the order above)
# Settings (environment): ATTACK_SECONDS (login scenarios, default 60), ATTACK_TRIALS
# (revocation lineages, default 40), ATTACK_OVERSHOOT_TRIALS (default 6),
# ATTACK_WRK_SECONDS (default 8). See docs/abuse.md (Measured figures) for a recorded run.

set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/bench/wrk.sh
source "$ROOT/scripts/bench/wrk.sh"
LIMIT_SECONDS=1200

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'attack-sim: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/bench/child.sh
source "$ROOT/scripts/bench/child.sh"

command -v taskset >/dev/null || die "taskset (util-linux) is required"
command -v timeout >/dev/null || die "timeout (coreutils) is required"
ensure_wrk
(($(nproc) >= 2)) || die "needs at least 2 CPUs to keep a node and wrk apart"
[[ $(id -u) -eq 0 ]] || log "not root: binding many loopback source addresses may still work"
# 100,000 short connections from distinct addresses leave many sockets in TIME-WAIT.
sysctl -qw net.ipv4.tcp_tw_reuse=1 2>/dev/null || true

log "building the release binary and the attack example"
# Two builds: selecting an example would leave the node binary out of the first.
(cd "$ROOT" && cargo build --release -p portcullis --bin portcullis --quiet)
(cd "$ROOT" && cargo build --release -p cluster-tests --example attack --quiet)

OUT="$ROOT/target/attack-sim/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
log "running (output also in $OUT/attack.txt)"
set +e
CLUSTER_TESTS_BIN="$ROOT/target/release/portcullis" \
  timeout --foreground -k 10 "$LIMIT_SECONDS" \
  "$ROOT/target/release/examples/attack" "$@" > >(tee "$OUT/attack.txt") 2>"$OUT/stderr.txt" &
CHILD_PID=$!
wait "$CHILD_PID"
STATUS=$?
CHILD_PID=""
set -e
if ((STATUS == 124)); then
  die "the simulation ran past $LIMIT_SECONDS s and was stopped"
elif ((STATUS != 0)); then
  tail -n 20 "$OUT/stderr.txt" >&2
  die "a goal was missed or the simulation failed (exit $STATUS)"
fi
log "every goal met"
