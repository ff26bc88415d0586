#!/usr/bin/env bash
# Proves the docker-compose walkthrough end to end: brings up the three-region cluster
# of docker-compose.yml, gets a token from eu, checks it passes in us and ap, revokes it
# in us, and checks that ap (and eu) reject it; a refresh token from eu is redeemed in
# us. Then it stops the whole cluster (SIGTERM), starts it again on the same volumes,
# and checks that the revoked token is still rejected and a token issued before the
# stop still passes everywhere. Exits non-zero on the first failure and always tears
# the cluster down with `docker-compose down -v`.
#
#   scripts/compose-smoke.sh
#
# Before starting anything it checks what compose mounts, the monitoring profile
# included, with deploy/compose/check-mounts.py (Prometheus and Grafana are not started).
# It needs the image portcullis:local (built with scripts/build-image.sh when missing;
# SMOKE_BUILD=1 rebuilds it anyway) and creates the cluster secret if there is none.
# It runs as its own compose project on its own subnet and host ports, so it does not
# touch a cluster started from the README; override with:
#
#   SMOKE_PROJECT   compose project name          (portcullis-smoke)
#   CLUSTER_SUBNET  /24 prefix of the network     (172.31.47)
#   SMOKE_PORT      HTTP ports SMOKE_PORT+1..+3   (18080: eu 18081, us 18082, ap 18083)
#   SMOKE_DEADLINE  seconds to wait for readiness (90)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

project="${SMOKE_PROJECT:-portcullis-smoke}"
base="${SMOKE_PORT:-18080}"
deadline="${SMOKE_DEADLINE:-90}"
export CLUSTER_SUBNET="${CLUSTER_SUBNET:-172.31.47}"
export EU_HTTP_PORT=$((base + 1)) US_HTTP_PORT=$((base + 2)) AP_HTTP_PORT=$((base + 3))
export EU_GOSSIP_PORT=$((base + 11)) US_GOSSIP_PORT=$((base + 12)) AP_GOSSIP_PORT=$((base + 13))
declare -A url=(
  [eu]="http://127.0.0.1:$EU_HTTP_PORT"
  [us]="http://127.0.0.1:$US_HTTP_PORT"
  [ap]="http://127.0.0.1:$AP_HTTP_PORT"
)
# The demo credentials of deploy/compose/portcullis.toml (published on purpose).
app="demo-app:MoSHb-xdDHK2E2vzRU2ySP6BERUhaaAMLDNYUlNnMVI"
admin="demo-admin:zPJtouRh-DJ-E83cRyDkvbJIn8hOV1UuYiDloPXfZv8"

compose() { docker-compose -p "$project" "$@"; }
say() { printf 'compose-smoke: %s\n' "$*"; }
fail() {
  say "FAIL: $*" >&2
  exit 1
}

cleanup() {
  local status=$?
  if [[ $status -ne 0 ]]; then
    say "logs of the failed run:" >&2
    compose logs --no-color --tail=40 >&2 || true
  fi
  compose down -v --remove-orphans >/dev/null 2>&1 || say "docker-compose down -v failed" >&2
  exit "$status"
}

# Seconds since the epoch with milliseconds, for propagation times.
now_ms() { date +%s%3N; }

# Status code of a gate check with TOKEN on REGION.
check_status() {
  curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $2" \
    -H "X-Forwarded-Method: GET" -H "X-Forwarded-Uri: /api/orders/42" "${url[$1]}/v1/check"
}

# Polls until CHECK_STATUS on REGION for TOKEN is WANT, for at most SECONDS.
wait_status() {
  local region=$1 token=$2 want=$3 seconds=$4 got=""
  local until=$(($(date +%s) + seconds))
  while (($(date +%s) < until)); do
    got="$(check_status "$region" "$token")"
    [[ "$got" == "$want" ]] && return 0
    sleep 0.05
  done
  fail "$region answered $got to the gate, not $want, within ${seconds}s"
}

# Prints a field of the JSON object on stdin.
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

token_from() {
  curl -sf -u "$2" "${@:3}" "${url[$1]}/oauth/token" | field access_token
}

wait_ready() {
  local region=$1
  local until=$(($(date +%s) + deadline))
  while (($(date +%s) < until)); do
    curl -sf "${url[$region]}/readyz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  fail "$region was not ready within ${deadline}s"
}

# Waits until REGION's admin view lists all three nodes live (or itself) with their
# regions.
wait_members() {
  local region=$1 view=""
  local until=$(($(date +%s) + deadline))
  while (($(date +%s) < until)); do
    view="$(curl -sf -H "Authorization: Bearer $admin_token" "${url[$region]}/admin/v1/cluster")" &&
      python3 -c '
import json, sys
view = json.loads(sys.argv[1])
up = {m["node_id"]: m["region"] for m in view["members"] if m["state"] in ("live", "self")}
sys.exit(0 if up == {"eu": "eu", "us": "us", "ap": "ap"} else 1)
' "$view" && return 0
    sleep 0.2
  done
  fail "$region does not see eu, us and ap live within ${deadline}s: $view"
}

prepare() {
  command -v docker-compose >/dev/null || fail "docker-compose is not installed"
  docker info >/dev/null 2>&1 || fail "docker is not usable (is the daemon running?)"
  if [[ "${SMOKE_BUILD:-0}" == 1 ]] || ! docker image inspect portcullis:local >/dev/null 2>&1; then
    [[ -x scripts/build-image.sh ]] || fail "no image portcullis:local and no scripts/build-image.sh"
    say "building portcullis:local"
    scripts/build-image.sh
  fi
  deploy/compose/gen-secret.sh
  # The monitoring images cannot be pulled here: check that profile's mounts statically.
  compose --profile monitoring config | deploy/compose/check-mounts.py ||
    fail "the compose file or what it mounts is broken"
}

start_cluster() {
  say "starting eu, us, ap (project $project, subnet $CLUSTER_SUBNET.0/24)"
  local started
  # Leftovers of a run that was killed outright would bring their old volumes along.
  compose down -v --remove-orphans >/dev/null 2>&1 || true
  started=$(now_ms)
  compose up -d eu us ap
  for region in eu us ap; do
    wait_ready "$region"
  done
  say "all three ready after $(($(now_ms) - started)) ms"
}

check_topology() {
  for region in eu us ap; do
    local label user
    label="$(docker inspect -f '{{index .Config.Labels "io.portcullis.region"}}' \
      "$(compose ps -q "$region")")"
    [[ "$label" == "$region" ]] || fail "$region carries region label '$label'"
    user="$(docker inspect -f '{{.Config.User}}' "$(compose ps -q "$region")")"
    say "$region: label $label, user '${user:-root}'"
  done
  admin_token="$(token_from eu "$admin" -d grant_type=client_credentials)" ||
    fail "no admin token from eu"
  for region in eu us ap; do
    wait_members "$region"
  done
  say "each node sees eu, us and ap live"
}

walkthrough() {
  local revoked took
  token="$(token_from eu "$app" -d grant_type=password -d username=alice \
    -d password=compose-demo-password)" || fail "no token from eu"
  kept="$(token_from ap "$app" -d grant_type=client_credentials)" || fail "no token from ap"
  say "tokens issued by eu and ap"
  for region in eu us ap; do
    wait_status "$region" "$token" 200 10
    wait_status "$region" "$kept" 200 10
  done
  say "both accepted by eu, us and ap"

  revoked="$(curl -s -o /dev/null -w '%{http_code}' -u "$app" -d "token=$token" \
    "${url[us]}/oauth/revoke")"
  [[ "$revoked" == 200 ]] || fail "us answered $revoked to the revocation"
  took=$(now_ms)
  wait_status ap "$token" 401 5
  say "revoked in us, rejected by ap after $(($(now_ms) - took)) ms"
  wait_status eu "$token" 401 5
  say "rejected by eu too"
}

# A refresh token from eu is redeemed in us; the access token it yields passes in ap.
cross_region_refresh() {
  local answer refresh access
  answer="$(curl -sf -u "$app" -d grant_type=password -d username=alice \
    -d password=compose-demo-password "${url[eu]}/oauth/token")" || fail "no login at eu"
  refresh="$(field refresh_token <<<"$answer")" || fail "eu gave no refresh token"
  answer="$(curl -sf -u "$app" -d grant_type=refresh_token -d "refresh_token=$refresh" \
    "${url[us]}/oauth/token")" || fail "us refused eu's refresh token"
  access="$(field access_token <<<"$answer")" || fail "us gave no access token"
  wait_status ap "$access" 200 10
  say "refresh token from eu redeemed in us; its access token passes in ap"
}

# A full stop and start with the volumes kept: keys and revocations survive.
restart_cluster() {
  local code
  compose stop
  for region in eu us ap; do
    code="$(docker inspect -f '{{.State.ExitCode}}' "$(compose ps -q "$region")")"
    say "$region stopped by SIGTERM with exit status $code"
    [[ "$code" == 0 ]] || fail "$region did not stop cleanly (exit status $code)"
  done
  compose start
  for region in eu us ap; do
    wait_ready "$region"
  done
  for region in eu us ap; do
    wait_status "$region" "$token" 401 5
    wait_status "$region" "$kept" 200 10
  done
  say "after a full restart the revoked token is still rejected, the other still passes"
}

trap cleanup EXIT
prepare
start_cluster
check_topology
walkthrough
cross_region_refresh
restart_cluster
say "PASS"
