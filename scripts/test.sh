#!/usr/bin/env bash
# Run everything CI runs: lint, types, unit tests and the tests against a real Kafka.
# Starts the local broker (deploy/kafka-local.sh) if it is not running, and stops it again
# at the end unless KEEP_KAFKA=1 (a broker that was already running is left running).
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -k codec
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prereqs.sh test
bash scripts/bootstrap.sh
# The LogQL parser the dashboard tests use (@grafana/lezer-logql, from the npm registry).
if [[ ! -d deploy/grafana/node/node_modules ]]; then
  npm ci --prefix deploy/grafana/node --no-audit --no-fund
fi
rc=0
bash deploy/kafka-local.sh status >/dev/null 2>&1 || rc=$?
if ((rc == 3)); then # not running: this script starts it, so it also stops it
  if [[ ${KEEP_KAFKA:-0} == 1 ]]; then
    trap 'echo "[test] the Kafka broker keeps running (KEEP_KAFKA=1): bash deploy/kafka-local.sh stop"' EXIT
  else
    trap 'echo "[test] stopping the Kafka broker this run started (KEEP_KAFKA=1 keeps it)"; bash deploy/kafka-local.sh stop >/dev/null || true' EXIT
  fi
else
  trap 'echo "[test] the Kafka broker was already running and keeps running"' EXIT
fi
bash deploy/kafka-local.sh start
export KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:${KAFKA_PORT:-9092}}
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
