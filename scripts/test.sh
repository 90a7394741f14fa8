#!/usr/bin/env bash
# Run everything CI runs: lint, types, unit tests and the tests against a real Kafka.
# Starts the local broker (deploy/kafka-local.sh) if it is not running, and stops it again
# at the end unless KEEP_KAFKA=1 (a broker that was already running is left running).
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -k codec
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prereqs.sh test
bash scripts/bootstrap.sh
# What the dashboard tests use, from the npm registry: Grafana's LogQL parser
# (@grafana/lezer-logql) and Grafana's dashboard types (@grafana/schema) with tsc.
# Reinstalled when the lockfile is newer than the last install.
node_dir=deploy/grafana/node
if [[ ! $node_dir/node_modules/.package-lock.json -nt $node_dir/package-lock.json ]]; then
  if [[ $(node -p 'process.versions.node.split(".")[0]') -lt 24 ]]; then
    echo "note: @grafana/lezer-logql declares node >= 24; on Node $(node -v) npm warns EBADENGINE" \
      "and installs it anyway (deploy/grafana/node/.npmrc: engine-strict=false); it runs on Node 20." >&2
  fi
  npm ci --prefix "$node_dir" --no-audit --no-fund
fi
# Cortex for tests/integration/test_cortex.py (a no-op once built; the first build takes minutes).
bash deploy/cortex/build.sh >/dev/null
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
# The player SDK: its toolchain and players are pinned in sdk/package-lock.json.
if [[ ! -d sdk/node_modules ]]; then
  npm ci --prefix sdk --no-audit --no-fund
fi
npm run --prefix sdk --silent lint
npm run --prefix sdk --silent typecheck
npm run --prefix sdk --silent test
# The browser tests load sdk/dist (the script-tag bundle and the ESM entries).
npm run --prefix sdk --silent build
# Their test media, generated with ffmpeg once (cached in .local/media).
.venv/bin/python -m tests.media.generate >/dev/null
bash deploy/kafka-local.sh start
export KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:${KAFKA_PORT:-9092}}
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
if (($#)); then
  .venv/bin/python -m pytest "$@"
  exit
fi
.venv/bin/python -m pytest --ignore=tests/browser
# The five players in headless Chromium through the real pipeline (tests/browser), last.
.venv/bin/python -m pytest tests/browser
