#!/usr/bin/env bash
# Run everything CI runs: lint, types, unit tests and the tests against a real Kafka.
# Starts the local broker (deploy/kafka-local.sh) if it is not running. Extra arguments
# go to pytest, e.g. scripts/test.sh tests/unit -k codec
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# The LogQL parser the dashboard tests use (@grafana/lezer-logql, from the npm registry).
if [[ ! -d deploy/grafana/node/node_modules ]]; then
  npm ci --prefix deploy/grafana/node --no-audit --no-fund
fi
# The player SDK: its toolchain and players are pinned in sdk/package-lock.json.
if [[ ! -d sdk/node_modules ]]; then
  npm ci --prefix sdk --no-audit --no-fund
fi
npm run --prefix sdk --silent lint
npm run --prefix sdk --silent typecheck
npm run --prefix sdk --silent test
# The browser tests load sdk/dist (the script-tag bundle and the ESM entries).
npm run --prefix sdk --silent build
bash deploy/kafka-local.sh start
export KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:${KAFKA_PORT:-9092}}
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
