#!/usr/bin/env bash
# Run the whole OpenQoE pipeline on this machine, no Docker needed:
#   Kafka (deploy/kafka-local.sh) -> topics -> collector :8080 -> processor :6066
#   -> local Prometheus :9090 (scrapes both, loads the recording rules and alerts, receives the
#   processor's remote write), plus simulated player traffic in real time.
#
# It ends by itself when the traffic ends and stops everything it started (the broker too,
# when this script started it). KEEP_RUNNING=1 keeps the services up after the traffic,
# until Ctrl-C.
#
# Player demo pages (sdk/demo, one per player: HTML5, Video.js, hls.js, dash.js, Shaka) are
# served on :8090 with generated test media, reporting through the SDK to this collector:
# play a video and its view shows up in Prometheus and on qoe.views. DEMO_PAGES=0 skips them
# (they need Node.js/npm for the SDK bundle and ffmpeg for the media).
#
# Environment: DURATION (seconds of sample traffic, default 300), VIEWS (concurrent views, 20),
# SPEED (traffic speed-up, 1 = real time), KEEP_RUNNING (0), INGEST_PORT (8080),
# PROCESSOR_WEB_PORT (6066), DEMO_PORT (8090), DEMO_PAGES (1), PROMETHEUS_PORT (9090, or the next free port when 9090 is
# taken, e.g. by Debian's prometheus service), KAFKA_PORT (9092).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=$ROOT/.local/run
DURATION=${DURATION:-300}
VIEWS=${VIEWS:-20}
SPEED=${SPEED:-1}
KEEP_RUNNING=${KEEP_RUNNING:-0}
INGEST_PORT=${INGEST_PORT:-8080}
PROCESSOR_WEB_PORT=${PROCESSOR_WEB_PORT:-6066}
DEMO_PAGES=${DEMO_PAGES:-1}
DEMO_PORT=${DEMO_PORT:-8090}
export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:${KAFKA_PORT:-9092}
DEMO_KEY=demo-ingest-key

log() { printf '[run-local] %s\n' "$*"; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Everything this needs is checked (or installed, as root) before anything starts.
if [[ $DEMO_PAGES == 1 ]]; then
  bash scripts/prereqs.sh run demo
else
  bash scripts/prereqs.sh run
fi

if [[ -z ${PROMETHEUS_PORT:-} ]]; then
  PROMETHEUS_PORT=9090
  while port_busy "$PROMETHEUS_PORT" && ((PROMETHEUS_PORT < 9100)); do
    PROMETHEUS_PORT=$((PROMETHEUS_PORT + 1))
  done
  ((PROMETHEUS_PORT == 9090)) || log "port 9090 is taken (Debian's prometheus service?); using $PROMETHEUS_PORT"
fi
ports=("$INGEST_PORT" "$PROCESSOR_WEB_PORT" "$PROMETHEUS_PORT")
[[ $DEMO_PAGES == 1 ]] && ports+=("$DEMO_PORT")
for port in "${ports[@]}"; do
  if port_busy "$port"; then
    log "port $port is already in use; stop what uses it or set INGEST_PORT / PROCESSOR_WEB_PORT / PROMETHEUS_PORT / DEMO_PORT"
    exit 1
  fi
done

mkdir -p "$STATE"
pids=()
started_kafka=0
stopped=0
cleanup() {
  ((stopped)) && return
  stopped=1
  log "stopping the collector, processor and Prometheus"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if ((started_kafka)); then
    log "stopping the Kafka broker this script started"
    bash deploy/kafka-local.sh stop >/dev/null || true
  else
    log "Kafka was already running and keeps running (bash deploy/kafka-local.sh stop)"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bash scripts/bootstrap.sh
rc=0
bash deploy/kafka-local.sh status >/dev/null 2>&1 || rc=$?
((rc == 3)) && started_kafka=1 # 3: not running
bash deploy/kafka-local.sh start
.venv/bin/python -m ingest.topics

log "starting the collector on 127.0.0.1:$INGEST_PORT (log: $STATE/collector.log)"
INGEST_PORT=$INGEST_PORT INGEST_API_KEYS="demo:$DEMO_KEY" INGEST_CORS_ORIGINS="*" \
  .venv/bin/python -m ingest >"$STATE/collector.log" 2>&1 &
pids+=($!)

log "starting the processor on 127.0.0.1:$PROCESSOR_WEB_PORT (log: $STATE/processor.log)"
# Views nobody ends explicitly (players that vanish) close after 2 minutes here, not the
# production default of an hour, so they show up while you watch.
PROCESSOR_WEB_PORT=$PROCESSOR_WEB_PORT PROCESSOR_DATA_DIR="$STATE/processor" \
  PROCESSOR_REMOTE_WRITE_URL="http://127.0.0.1:$PROMETHEUS_PORT/api/v1/write" \
  PROCESSOR_VIEW_TIMEOUT_S=120 PROCESSOR_CLOSED_VIEW_RETENTION_S=600 \
  .venv/bin/python -m processors >"$STATE/processor.log" 2>&1 &
pids+=($!)

mkdir -p "$STATE/prometheus"
cat >"$STATE/prometheus/prometheus.yml" <<YAML
global:
  scrape_interval: 5s
  evaluation_interval: 15s
rule_files:
  - $ROOT/deploy/prometheus/rules/openqoe-recording.yml
  - $ROOT/deploy/prometheus/rules/openqoe-alerts.yml
scrape_configs:
  - job_name: openqoe-collector
    static_configs:
      - targets: ["127.0.0.1:$INGEST_PORT"]
  - job_name: openqoe-processor
    static_configs:
      - targets: ["127.0.0.1:$PROCESSOR_WEB_PORT"]
YAML
log "starting Prometheus on 127.0.0.1:$PROMETHEUS_PORT (log: $STATE/prometheus.log)"
prometheus --config.file="$STATE/prometheus/prometheus.yml" \
  --storage.tsdb.path="$STATE/prometheus/data" \
  --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
  --web.enable-remote-write-receiver >"$STATE/prometheus.log" 2>&1 &
pids+=($!)

wait_ready() { # name url log
  for _ in $(seq 1 120); do
    curl -fsS "$2" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  log "$1 did not become ready at $2; the end of its log:"
  tail -20 "$3"
  exit 1
}
if [[ $DEMO_PAGES == 1 ]]; then
  # The SDK bundle the pages load, and the players, pinned in sdk/package-lock.json.
  [[ -d sdk/node_modules ]] || npm ci --prefix sdk --no-audit --no-fund --silent
  [[ -f sdk/dist/openqoe.min.js ]] || npm run --prefix sdk --silent build >/dev/null
  log "generating the demo media with ffmpeg (once, cached in .local/media)"
  .venv/bin/python -m tests.media.generate >/dev/null
  log "starting the player demo pages on 127.0.0.1:$DEMO_PORT (log: $STATE/demo.log)"
  .venv/bin/python -m tests.media.server --port "$DEMO_PORT" \
    --collector "http://127.0.0.1:$INGEST_PORT" --key "$DEMO_KEY" --org demo >"$STATE/demo.log" 2>&1 &
  pids+=($!)
fi

wait_ready collector "http://127.0.0.1:$INGEST_PORT/ready" "$STATE/collector.log"
wait_ready processor "http://127.0.0.1:$PROCESSOR_WEB_PORT/health" "$STATE/processor.log"
wait_ready Prometheus "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" "$STATE/prometheus.log"
if [[ $DEMO_PAGES == 1 ]]; then
  wait_ready "demo pages" "http://127.0.0.1:$DEMO_PORT/demo/index.html" "$STATE/demo.log"
fi

PROM=http://127.0.0.1:$PROMETHEUS_PORT
UI=$PROM # Debian's package has only the classic web UI, under /classic
[[ $(curl -s -o /dev/null -w '%{http_code}' "$PROM/rules") == 200 ]] || UI=$PROM/classic
query_link() { printf '%s/graph?g0.expr=%s&g0.tab=0&g0.range_input=30m' "$UI" \
  "$(.venv/bin/python -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$1")"; }

cat <<TXT

  OpenQoE is running. Where to look:
    collector         http://127.0.0.1:$INGEST_PORT/   (POST /v1/events with X-API-Key: $DEMO_KEY, org_id "demo")
    collector metrics http://127.0.0.1:$INGEST_PORT/metrics
    processor         http://127.0.0.1:$PROCESSOR_WEB_PORT/health   http://127.0.0.1:$PROCESSOR_WEB_PORT/metrics
    Prometheus        $UI/rules   $UI/alerts
    QoE (recording rules, first values after about a minute):
      startup p95        $(query_link 'openqoe:video_startup_seconds:p95_5m')
      rebuffer ratio     $(query_link 'openqoe:rebuffer_ratio:5m')
      failure ratio      $(query_link 'openqoe:playback_failure_ratio:5m')
      concurrent viewers $(query_link 'openqoe:concurrent_viewers:sum')
    per-view summaries .venv/bin/python -m schemas.tail qoe.views --from-beginning
    raw events         .venv/bin/python -m schemas.tail qoe.events.raw
    dead letters       .venv/bin/python -m schemas.tail qoe.events.rejected --from-beginning
    logs               $STATE/*.log
TXT
if [[ $DEMO_PAGES == 1 ]]; then
  cat <<TXT
    player demo pages  http://127.0.0.1:$DEMO_PORT/demo/index.html   (HTML5, Video.js, hls.js, dash.js, Shaka: press play,
                       and the view appears on qoe.views when it ends or the page closes; its org is "demo")
TXT
fi
cat <<TXT

  Simulated traffic: $VIEWS players at a time for $DURATION s, speed ${SPEED}x. Each view is a
  1, 2 or 5 minute video: start-up of ~1 s (log-normal), heartbeats every 10 s, occasional stalls,
  bitrate switches and seeks, quartiles, and a few startup failures, exits before start and fatal
  errors; about a third of the views watch to the end (bench/traffic.py). Ctrl-C stops everything.

TXT
.venv/bin/python -m bench.traffic --url "http://127.0.0.1:$INGEST_PORT" --key "$DEMO_KEY" \
  --org demo --views "$VIEWS" --duration "$DURATION" --speed "$SPEED"
if [[ $KEEP_RUNNING == 1 ]]; then
  log "sample traffic finished; KEEP_RUNNING=1: the services keep running until Ctrl-C"
  wait
fi
log "sample traffic finished"
