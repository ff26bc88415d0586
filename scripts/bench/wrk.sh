# Shared by the benchmark scripts: installs wrk from Debian's packages when it is
# missing. Expects the sourcing script to define `log`.
ensure_wrk() {
  command -v wrk >/dev/null && return
  log "installing wrk"
  if [[ $(id -u) -eq 0 ]]; then
    apt-get install -y wrk >/dev/null ||
      { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
  else
    sudo apt-get install -y wrk >/dev/null
  fi
}
