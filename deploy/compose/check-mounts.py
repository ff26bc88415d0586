#!/usr/bin/env python3
"""Checks what the docker-compose cluster mounts, without starting the monitoring profile.

The Prometheus and Grafana images cannot be pulled everywhere (they cannot on the
machine this project is built on), so the `monitoring` profile is checked statically:

- every bind-mounted host path of every service, and the secret file, exist;
- Prometheus scrapes the node services by name on their HTTP port, and every rule file
  prometheus.yml names exists beside it (compose mounts the whole directory);
- Grafana's datasources point at the Prometheus service, and every dashboard provider
  reads a directory that compose mounts and that holds at least one dashboard.

Reads the output of `docker-compose --profile monitoring config` on stdin (paths in it
are absolute); prints each problem and exits 1 if there is any.

    docker-compose --profile monitoring config | deploy/compose/check-mounts.py
"""

import os
import sys

import yaml

NODES = ("eu", "us", "ap")
NODE_HTTP_PORT = 8080
PROMETHEUS_PORT = 9090


def bind_mounts(service):
    """(host path, container path) of each bind mount of a compose service."""
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                yield volume["source"], volume["target"]
            continue
        parts = volume.split(":")
        if len(parts) >= 2 and parts[0].startswith("/"):
            yield parts[0], parts[1]


def host_path(service, container_path):
    """The host path behind CONTAINER_PATH in SERVICE, through its bind mounts."""
    for source, target in bind_mounts(service):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return source + container_path[len(target):]
    return None


def load_yaml(path, problems):
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as error:
        problems.append(f"{path}: {error}")
        return {}


def check_paths(config, problems):
    for name, service in config.get("services", {}).items():
        for source, _ in bind_mounts(service):
            if not os.path.exists(source):
                problems.append(f"{name}: mounts {source}, which does not exist")
    for name, secret in config.get("secrets", {}).items():
        if "file" in secret and not os.path.isfile(secret["file"]):
            problems.append(
                f"secret {name}: {secret['file']} is missing (deploy/compose/gen-secret.sh)"
            )


def check_prometheus(config, problems):
    service = config["services"].get("prometheus")
    if service is None:
        problems.append("no prometheus service")
        return
    main = host_path(service, "/etc/prometheus/prometheus.yml")
    if main is None or not os.path.isfile(main):
        problems.append("prometheus: /etc/prometheus/prometheus.yml is not mounted")
        return
    settings = load_yaml(main, problems)
    for rule_file in settings.get("rule_files", []):
        path = os.path.join(os.path.dirname(main), rule_file)
        if not os.path.isfile(path):
            problems.append(f"prometheus.yml: rule file {rule_file} is not beside it")
    targets = {
        target
        for job in settings.get("scrape_configs", [])
        for static in job.get("static_configs", [])
        for target in static.get("targets", [])
    }
    for node in NODES:
        if f"{node}:{NODE_HTTP_PORT}" not in targets:
            problems.append(f"prometheus.yml: does not scrape {node}:{NODE_HTTP_PORT}")
    for target in targets:
        host = target.rsplit(":", 1)[0]
        if host not in config["services"]:
            problems.append(f"prometheus.yml: target {target} is not a compose service")


def provisioning_files(service, kind, problems):
    """The provisioning YAML files of KIND (datasources, dashboards) Grafana reads."""
    directory = host_path(service, f"/etc/grafana/provisioning/{kind}")
    if directory is None or not os.path.isdir(directory):
        problems.append(f"grafana: /etc/grafana/provisioning/{kind} is not mounted")
        return []
    names = sorted(n for n in os.listdir(directory) if n.endswith((".yml", ".yaml")))
    if not names:
        problems.append(f"grafana: no provisioning file in {directory}")
    return [load_yaml(os.path.join(directory, n), problems) for n in names]


def check_grafana(config, problems):
    service = config["services"].get("grafana")
    if service is None:
        problems.append("no grafana service")
        return
    want = f"prometheus:{PROMETHEUS_PORT}"
    for settings in provisioning_files(service, "datasources", problems):
        for source in settings.get("datasources", []):
            if source.get("type") == "prometheus" and want not in source.get("url", ""):
                problems.append(f"grafana datasource {source.get('name')}: url is not {want}")
    for settings in provisioning_files(service, "dashboards", problems):
        for provider in settings.get("providers", []):
            path = provider.get("options", {}).get("path", "")
            directory = host_path(service, path)
            if directory is None or not os.path.isdir(directory):
                problems.append(f"grafana provider {provider.get('name')}: {path} is not mounted")
            elif not any(n.endswith(".json") for n in os.listdir(directory)):
                problems.append(f"grafana provider {provider.get('name')}: no dashboard in {path}")


def main():
    config = yaml.safe_load(sys.stdin)
    problems = []
    check_paths(config, problems)
    check_prometheus(config, problems)
    check_grafana(config, problems)
    for problem in problems:
        print(f"check-mounts: {problem}", file=sys.stderr)
    if problems:
        return 1
    print("check-mounts: every mount of the cluster and the monitoring profile is in place")
    return 0


if __name__ == "__main__":
    sys.exit(main())
