# Shared by the benchmark scripts: the example they run is started under `timeout`,
# which puts it in a process group of its own and signals the whole group, so the nodes
# it started go too. The sourcing script records the example's pid in CHILD_PID; on
# exit it is stopped, and an interrupt here is passed on to it.
CHILD_PID=""
cleanup() {
  if [[ -n "$CHILD_PID" ]]; then
    kill -TERM "$CHILD_PID" 2>/dev/null || true
    wait "$CHILD_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
