#!/usr/bin/env bash
# Creates the cluster secret of the docker-compose cluster (see docker-compose.yml):
# 48 random bytes, base64-encoded, in deploy/compose/secrets/cluster-secret.
#
# Compose bind-mounts the file at /run/secrets/cluster_secret, keeping its host
# permissions, and the node runs as uid 10001. So the file is mode 0644 (readable in
# the container) inside a directory of mode 0700 (unreadable by other host users).
# Both are git-ignored. An existing secret is kept unless --force is given: the nodes'
# volumes hold nothing that depends on it, but every running node must use the same one.
#
#   deploy/compose/gen-secret.sh [--force]
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
file="$dir/cluster-secret"

if [[ -s "$file" && "${1:-}" != "--force" ]]; then
  echo "keeping the existing $file (--force replaces it)"
  exit 0
fi
mkdir -p "$dir"
chmod 0700 "$dir"
umask 077
head -c 48 /dev/urandom | base64 -w0 >"$file.tmp"
chmod 0644 "$file.tmp"
mv "$file.tmp" "$file"
echo "wrote $file"
