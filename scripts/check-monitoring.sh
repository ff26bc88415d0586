#!/usr/bin/env bash
# Checks the monitoring files with Debian's promtool (package `prometheus`): the scrape
# config and every rule file it loads, the alerts' unit tests, and that
# deploy/prometheus/dashboard_rules.yml is exactly what scripts/dashboard-rules.py
# extracts from the Grafana dashboard now. Run from anywhere; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

prom=deploy/prometheus
dashboard=deploy/grafana/dashboards/portcullis-abuse.json

if ! command -v promtool >/dev/null; then
  echo "check-monitoring: promtool not found; apt-get install prometheus" >&2
  exit 1
fi

# The dashboard is valid JSON and its rules are current.
fresh="$(mktemp)"
trap 'rm -f "$fresh"' EXIT
python3 scripts/dashboard-rules.py "$dashboard" >"$fresh"
if ! diff -u "$prom/dashboard_rules.yml" "$fresh"; then
  echo "check-monitoring: $prom/dashboard_rules.yml is stale; regenerate it with" >&2
  echo "  scripts/dashboard-rules.py > $prom/dashboard_rules.yml" >&2
  exit 1
fi

# check config also checks the rule files prometheus.yml names.
promtool check config "$prom/prometheus.yml"
promtool check rules "$prom/alerts.yml" "$prom/dashboard_rules.yml"
promtool test rules "$prom/alerts_test.yml"

# Grafana itself is not available here: check what can be checked without it, that the
# dashboard's datasource uid is the provisioned one and that its panels tile the grid.
python3 - "$dashboard" <<'PY'
import json, re, sys
from pathlib import Path
dashboard = json.loads(Path(sys.argv[1]).read_text())
provisioned = set(re.findall(r"^\s*uid:\s*(\S+)",
                  Path("deploy/grafana/provisioning/datasources/prometheus.yml").read_text(), re.M))
def uids(node):
    if isinstance(node, dict):
        ds = node.get("datasource")
        if isinstance(ds, dict) and "uid" in ds:
            yield ds["uid"]
        for value in node.values():
            yield from uids(value)
    elif isinstance(node, list):
        for value in node:
            yield from uids(value)
unknown = set(uids(dashboard)) - provisioned
if unknown:
    sys.exit(f"check-monitoring: the dashboard uses datasources not provisioned: {sorted(unknown)}")
# Grafana silently moves panels that overlap or overflow the 24-column grid.
panels = dashboard["panels"]
ids = [p["id"] for p in panels]
if len(ids) != len(set(ids)):
    sys.exit("check-monitoring: dashboard panel ids repeat")
boxes = [(p["title"], p["gridPos"]) for p in panels]
for title, g in boxes:
    if g["x"] < 0 or g["w"] < 1 or g["x"] + g["w"] > 24:
        sys.exit(f"check-monitoring: panel {title!r} leaves the 24-column grid")
for i, (a, g) in enumerate(boxes):
    for b, h in boxes[i + 1:]:
        if (g["x"] < h["x"] + h["w"] and h["x"] < g["x"] + g["w"]
                and g["y"] < h["y"] + h["h"] and h["y"] < g["y"] + g["h"]):
            sys.exit(f"check-monitoring: panels {a!r} and {b!r} overlap")
PY
# Every metric the rules, their tests and the dashboard name is one the node declares
# (node/src/metrics.rs), so a renamed metric cannot leave an alert that never fires.
python3 - "$dashboard" <<'PY'
import re, sys
from pathlib import Path
declared = set(re.findall(r'"(portcullis_[a-z0-9_]+)"', Path("node/src/metrics.rs").read_text()))
def known(name):
    base = re.sub(r"_(bucket|count|sum)$", "", name)
    return name in declared or base in declared
files = [sys.argv[1], "deploy/prometheus/alerts.yml", "deploy/prometheus/alerts_test.yml"]
unknown = {(f, n) for f in files for n in re.findall(r"portcullis_[a-z0-9_]+", Path(f).read_text())
           if not known(n)}
if unknown:
    sys.exit(f"check-monitoring: metrics the node does not declare: {sorted(unknown)}")

# Likewise every label value an alert or panel matches on (reason="rate_abuse",
# outcome=~"banned|...") is a string literal somewhere in the node's source.
source = "\n".join(p.read_text() for p in Path("node/src").rglob("*.rs"))
scraped = {"job", "instance", "le", "alertname", "alertstate", "__name__"}
matcher = r'([a-z_]+)\s*(?:=~|!~|!=|=)\s*"([^"]*)"'
checked = (sys.argv[1], "deploy/prometheus/alerts.yml")
texts = [Path(f).read_text().replace('\\"', '"') for f in checked]
missing = {(label, value) for text in texts for label, values in re.findall(matcher, text)
           if label not in scraped for value in values.split("|") if f'"{value}"' not in source}
if missing:
    sys.exit(f"check-monitoring: label values the node never sets: {sorted(missing)}")
PY
echo "check-monitoring: ok"
