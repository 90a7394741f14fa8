#!/usr/bin/env bash
# Run the whole OpenQoE pipeline on this machine, no Docker needed:
#   Kafka (deploy/kafka-local.sh) -> topics -> collector :8080 -> processor (when present)
#   -> local Prometheus :9090 (scrapes the collector; receives the processor's remote write)
#   plus synthetic player traffic. Ctrl-C stops everything this script started.
#
# Environment: DURATION (seconds of sample traffic, default 300), VIEWS (concurrent views, 20),
# INGEST_PORT (8080), PROMETHEUS_PORT (9090), KAFKA_PORT (9092).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=$ROOT/.local/run
mkdir -p "$STATE"
DURATION=${DURATION:-300}
VIEWS=${VIEWS:-20}
INGEST_PORT=${INGEST_PORT:-8080}
PROMETHEUS_PORT=${PROMETHEUS_PORT:-9090}
export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:${KAFKA_PORT:-9092}
DEMO_KEY=demo-ingest-key

log() { printf '[run-local] %s\n' "$*"; }
pids=()
cleanup() {
  log "stopping collector, processor and Prometheus (Kafka keeps running: bash deploy/kafka-local.sh stop)"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

bash scripts/bootstrap.sh
bash deploy/kafka-local.sh start
.venv/bin/python -m ingest.topics

log "starting the collector on 127.0.0.1:$INGEST_PORT (log: $STATE/collector.log)"
INGEST_PORT=$INGEST_PORT INGEST_API_KEYS="demo:$DEMO_KEY" INGEST_CORS_ORIGINS="*" \
  .venv/bin/python -m ingest >"$STATE/collector.log" 2>&1 &
pids+=($!)

if [[ -f processors/__main__.py ]]; then
  log "starting the processor (log: $STATE/processor.log)"
  PROCESSOR_REMOTE_WRITE_URL="http://127.0.0.1:$PROMETHEUS_PORT/api/v1/write" \
    .venv/bin/python -m processors >"$STATE/processor.log" 2>&1 &
  pids+=($!)
fi

if command -v prometheus >/dev/null; then
  mkdir -p "$STATE/prometheus"
  cat >"$STATE/prometheus/prometheus.yml" <<YAML
global:
  scrape_interval: 5s
scrape_configs:
  - job_name: openqoe-collector
    static_configs:
      - targets: ["127.0.0.1:$INGEST_PORT"]
YAML
  log "starting Prometheus on 127.0.0.1:$PROMETHEUS_PORT (log: $STATE/prometheus.log)"
  prometheus --config.file="$STATE/prometheus/prometheus.yml" \
    --storage.tsdb.path="$STATE/prometheus/data" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
    --web.enable-remote-write-receiver >"$STATE/prometheus.log" 2>&1 &
  pids+=($!)
else
  log "Prometheus is not installed (Debian: apt-get install prometheus); metrics are still at :$INGEST_PORT/metrics"
fi

for _ in $(seq 1 60); do
  curl -fsS "http://127.0.0.1:$INGEST_PORT/ready" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$INGEST_PORT/ready" >/dev/null || { tail -20 "$STATE/collector.log"; exit 1; }

cat <<TXT

  OpenQoE is running. Where to look:
    collector        http://127.0.0.1:$INGEST_PORT   (POST /v1/events with X-API-Key: $DEMO_KEY, org_id "demo")
    collector stats  http://127.0.0.1:$INGEST_PORT/metrics
    Prometheus       http://127.0.0.1:$PROMETHEUS_PORT/graph?g0.expr=sum%20by%20(event_type)%20(rate(openqoe_ingest_events_accepted_total%5B1m%5D))
    raw events       .venv/bin/python -m schemas.tail qoe.events.raw
    dead letters     .venv/bin/python -m schemas.tail qoe.events.rejected --from-beginning
    logs             $STATE/*.log

  Sending sample traffic: $VIEWS concurrent views for $DURATION s (Ctrl-C to stop everything).

TXT
.venv/bin/python -m bench.traffic --url "http://127.0.0.1:$INGEST_PORT" --key "$DEMO_KEY" \
  --org demo --views "$VIEWS" --duration "$DURATION"
log "sample traffic finished; services keep running until Ctrl-C"
wait
