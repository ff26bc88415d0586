#!/usr/bin/env bash
# Validates docs/openapi.yaml against the OpenAPI 3.1 schema with openapi-spec-validator
# (from PyPI, pinned, in a throwaway virtualenv), so that other tools can read it.
# node/tests/openapi.rs checks the same document against a running node.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="$(mktemp -d)"
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check openapi-spec-validator==0.9.0
"$venv/bin/openapi-spec-validator" docs/openapi.yaml
