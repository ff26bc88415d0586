#!/usr/bin/env bash
# Builds the portcullis container image in one command, without pulling anything:
#
#   1. a statically linked release binary on the host
#      (RUSTFLAGS="-C target-feature=+crt-static", --target x86_64-unknown-linux-gnu);
#   2. a staging directory, target/image/, holding a copy of it without debug sections
#      and the empty directory that becomes /data;
#   3. `docker build -t portcullis:local .` from the repository's FROM scratch
#      Dockerfile (.dockerignore keeps the context to deploy/docker/ and target/image/).
#
# The image is labelled with the binary's SHA-256; when an image of that tag already
# carries the same digest, step 3 is skipped, so running this again after an unchanged
# build costs one no-op cargo build. FORCE=1 rebuilds the image regardless.
#
# Usage: scripts/build-image.sh [TAG]   (default portcullis:local)
# Needs: cargo, the glibc static libraries (Debian's libc6-dev), binutils (objcopy,
# readelf), flock (util-linux), docker.

set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TAG="${1:-portcullis:local}"
TRIPLE="x86_64-unknown-linux-gnu"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BIN="$TARGET_DIR/$TRIPLE/release/portcullis"
STAGE="$ROOT/target/image"
LABEL="io.portcullis.binary-sha256"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build-image: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the docker daemon is not reachable (docker info failed)"

# One build at a time: the staging directory is shared (the compose smoke test and the
# docker fault tests may both call this script).
mkdir -p "$ROOT/target"
exec 9>"$ROOT/target/.build-image.lock"
flock 9

log "building the static binary ($TRIPLE, release)"
cd "$ROOT"
# With --target, RUSTFLAGS reach only the target's crates, not build scripts or proc
# macros, and the output lands in its own directory: host builds are not disturbed.
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release -p portcullis --bin portcullis --target "$TRIPLE"
if readelf -d "$BIN" 2>/dev/null | grep -q '(NEEDED)'; then
  die "$BIN links shared libraries; a FROM scratch image needs a static binary"
fi

log "staging $STAGE"
rm -rf "$STAGE"
mkdir -p "$STAGE/data"
chmod 0700 "$STAGE/data"
# Debug sections are for the host's debugger; symbols stay, so backtraces name functions.
objcopy --strip-debug "$BIN" "$STAGE/portcullis"
chmod 0755 "$STAGE/portcullis"
digest="$(sha256sum "$STAGE/portcullis" | cut -d' ' -f1)"

current="$(docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$TAG" \
  2>/dev/null || true)"
if [ "$current" = "$digest" ] && [ -z "${FORCE:-}" ]; then
  log "$TAG already holds this binary (sha256 ${digest:0:12}); not rebuilding"
  exit 0
fi

log "docker build -t $TAG"
previous="$(docker image inspect --format '{{ .Id }}' "$TAG" 2>/dev/null || true)"
docker build --label "$LABEL=$digest" -t "$TAG" "$ROOT"
# The image the tag held before is left dangling; remove it unless a container uses it.
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect --format '{{ .Id }}' "$TAG")" ]; then
  docker image rm "$previous" >/dev/null 2>&1 || true
fi
size="$(docker image inspect --format '{{ .Size }}' "$TAG")"
log "built $TAG: $((size / 1024 / 1024)) MiB, binary sha256 ${digest:0:12}"
