#!/usr/bin/env bash
# deploy/kafka-local.sh - run a single-node Apache Kafka 4.x (KRaft, combined broker+controller)
# on 127.0.0.1 without Docker, from jars resolved from Maven Central.
#
# Usage: deploy/kafka-local.sh {fetch|start|stop|restart|status|logs [-f]|help}
#
#   fetch    Resolve the broker jars with Maven into the cache (no-op when already cached).
#   start    fetch if needed, format storage once, start in the background and wait until the
#            broker really accepts produce + consume. No-op success when already running and ready.
#   stop     SIGTERM (clean controlled shutdown), wait for the process to exit, SIGKILL only after
#            KAFKA_STOP_TIMEOUT seconds.
#   restart  stop, then start.
#   status   Exit 0 if running and ready, 1 if running but not ready, 3 if not running.
#   logs     Print the log paths and the tail of server.log; `logs -f` follows it.
#
# Environment (defaults in brackets):
#   OPENQOE_KAFKA_HOME     state dir: libs/, data/, logs/, config/, run/   [<repo>/.local/kafka]
#   KAFKA_LIBS_DIR         jar cache root, one <version>/ dir per version  [$OPENQOE_KAFKA_HOME/libs]
#                          (lets a second broker with its own home reuse the same jars)
#   KAFKA_VERSION          org.apache.kafka:kafka_2.13 version             [4.4.0]
#   KAFKA_PORT             PLAINTEXT client listener on 127.0.0.1          [9092]
#   KAFKA_CONTROLLER_PORT  KRaft controller listener on 127.0.0.1          [9093]
#   KAFKA_HEAP             JVM heap flags                                  [-Xms256m -Xmx1g]
#   KAFKA_JVM_OPTS         extra JVM flags                                 [G1 settings as bin/kafka-run-class.sh]
#   KAFKA_START_TIMEOUT    seconds to wait for readiness on start          [90]
#   KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL    [60]
#   JAVA_HOME              JDK 17+ to use (java and javac)                 [java/javac on PATH]
#
# Readiness = a tiny Java client (compiled once against the resolved kafka-clients jar) creates
# the internal topic __openqoe_probe if missing, produces a unique record with acks=all, reads
# exactly that record back and commits its offset in consumer group __openqoe_probe (so the group
# coordinator works too). Requires Java 17+ (JDK, for javac) and Maven 3.6+ for the first fetch.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
readonly SCRIPT_DIR REPO_ROOT
readonly CONF_SRC_DIR="$SCRIPT_DIR/kafka"
readonly POM_FILE="$CONF_SRC_DIR/pom.xml"
readonly PROPS_TEMPLATE="$CONF_SRC_DIR/server.properties.template"
readonly LOG4J_CONFIG="$CONF_SRC_DIR/log4j2.yaml"

OPENQOE_KAFKA_HOME=${OPENQOE_KAFKA_HOME:-$REPO_ROOT/.local/kafka}
KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_HEAP=${KAFKA_HEAP:--Xms256m -Xmx1g}
KAFKA_JVM_OPTS=${KAFKA_JVM_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-60}

readonly KAFKA_HOST=127.0.0.1
readonly PROBE_TOPIC=__openqoe_probe
readonly PROBE_CLASS=OpenQoeKafkaProbe

LIBS_ROOT=${KAFKA_LIBS_DIR:-$OPENQOE_KAFKA_HOME/libs}
# Absolute paths: they end up in the broker's command line, which is how `stop` recognises it.
[[ $OPENQOE_KAFKA_HOME == /* ]] || OPENQOE_KAFKA_HOME="$PWD/$OPENQOE_KAFKA_HOME"
[[ $LIBS_ROOT == /* ]] || LIBS_ROOT="$PWD/$LIBS_ROOT"
DATA_DIR="$OPENQOE_KAFKA_HOME/data"
LOG_DIR="$OPENQOE_KAFKA_HOME/logs"
CONFIG_DIR="$OPENQOE_KAFKA_HOME/config"
RUN_DIR="$OPENQOE_KAFKA_HOME/run"
CONFIG_FILE="$CONFIG_DIR/server.properties"
PID_FILE="$RUN_DIR/kafka.pid"
# Version the running broker was started with (status/stop must probe with the matching jars).
RUN_VERSION_FILE="$RUN_DIR/kafka.version"
SERVER_LOG="$LOG_DIR/server.log"
OUT_FILE="$LOG_DIR/kafka.out"
PROBE_LOG="$LOG_DIR/probe.log"

JAVA=java
JAVAC=javac
if [[ -n ${JAVA_HOME:-} ]]; then
  JAVA="$JAVA_HOME/bin/java"
  JAVAC="$JAVA_HOME/bin/javac"
fi

# ----------------------------------------------------------------------------------------------
# helpers

log() { printf '[kafka-local] %s\n' "$*"; }
warn() { printf '[kafka-local] WARNING: %s\n' "$*" >&2; }
die() {
  printf '[kafka-local] ERROR: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo pipefail$/{/^set /d;s/^# \{0,1\}//;p;}' "${BASH_SOURCE[0]}"
}

validate_config() {
  local name value
  for name in KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_START_TIMEOUT KAFKA_STOP_TIMEOUT; do
    value=${!name}
    # Kubernetes injects KAFKA_PORT=tcp://host:port for a Service named "kafka": reject that early.
    [[ $value =~ ^[0-9]+$ ]] || die "$name must be a number, got '$value'"
  done
  [[ $KAFKA_PORT != "$KAFKA_CONTROLLER_PORT" ]] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ"
  [[ $KAFKA_VERSION =~ ^[0-9][0-9A-Za-z.+-]*$ ]] || die "KAFKA_VERSION looks invalid: '$KAFKA_VERSION'"
}

libs_dir() { printf '%s/%s' "$LIBS_ROOT" "${1:-$KAFKA_VERSION}"; }

# Content of the fetch stamp: keyed by the Kafka version and the manifest that produced the jars.
stamp_key() {
  local sum
  sum=$(cksum <"$POM_FILE")
  printf 'kafka_2.13=%s pom-cksum=%s\n' "$KAFKA_VERSION" "${sum%% *}"
}

have_jars() {
  local stamp
  stamp="$(libs_dir)/.openqoe-fetched"
  [[ -f $stamp && "$(cat -- "$stamp")" == "$(stamp_key)" ]]
}

jar_lists() {
  local jar=$1 entry=$2
  if command -v unzip >/dev/null 2>&1; then
    unzip -l "$jar" "$entry" >/dev/null 2>&1
  else
    "${JAVA%java}jar" tf "$jar" 2>/dev/null | grep -qxF "$entry"
  fi
}

require_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "java not found (install JDK 17+ or set JAVA_HOME)"
  local line major
  line=$("$JAVA" -version 2>&1 | head -n 1)
  major=$(printf '%s\n' "$line" | sed -n 's/.*version "\([0-9][0-9]*\).*/\1/p')
  [[ -n $major ]] || die "cannot parse Java version from: $line"
  ((major >= 17)) || die "Kafka 4.x needs Java 17+, found: $line"
}

port_open() {
  # bash's /dev/tcp: succeeds iff something accepts connections on host:port.
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

read_pid() {
  local pid=''
  [[ -f $PID_FILE ]] && pid=$(tr -dc '0-9' <"$PID_FILE")
  printf '%s' "$pid"
}

# True if $1 is a live (non-zombie) process running our broker (kafka.Kafka with our config file).
is_our_broker() {
  local pid=$1 args
  [[ -n $pid ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  args=$(ps -ww -o args= -p "$pid" 2>/dev/null) || return 1
  [[ $args == *kafka.Kafka* && $args == *"$CONFIG_FILE"* ]]
}

# Prints the broker pid and returns 0 if our broker is running; removes a stale pid file.
running_pid() {
  local pid
  pid=$(read_pid)
  if is_our_broker "$pid"; then
    printf '%s' "$pid"
    return 0
  fi
  if [[ -f $PID_FILE ]]; then
    rm -f -- "$PID_FILE" "$RUN_VERSION_FILE"
  fi
  return 1
}

running_version() {
  if [[ -f $RUN_VERSION_FILE ]]; then cat -- "$RUN_VERSION_FILE"; else printf '%s' "$KAFKA_VERSION"; fi
}

with_lock() {
  mkdir -p -- "$RUN_DIR"
  if command -v flock >/dev/null 2>&1; then
    # fd 9 must not leak into the broker (see cmd_start), or the lock would live as long as it.
    exec 9>"$RUN_DIR/.lock"
    if ! flock -n 9; then
      log "waiting for another kafka-local.sh run to finish (lock $RUN_DIR/.lock) ..."
      flock -w 300 9 || die "another kafka-local.sh is still holding $RUN_DIR/.lock"
    fi
  fi
}

show_tail() {
  local file=$1 lines=${2:-40}
  if [[ -s $file ]]; then
    printf '\n----- last %s lines of %s -----\n' "$lines" "$file" >&2
    tail -n "$lines" -- "$file" >&2
  fi
}

print_endpoints() {
  log "bootstrap servers : $KAFKA_HOST:$KAFKA_PORT (PLAINTEXT; export KAFKA_BOOTSTRAP_SERVERS=$KAFKA_HOST:$KAFKA_PORT)"
  log "controller        : $KAFKA_HOST:$KAFKA_CONTROLLER_PORT (KRaft, internal)"
  log "logs              : $SERVER_LOG (controller.log, state-change.log, kafka.out alongside)"
  log "data              : $DATA_DIR"
}

# ----------------------------------------------------------------------------------------------
# fetch

cmd_fetch() {
  validate_config
  if have_jars; then
    log "jars for kafka_2.13 $KAFKA_VERSION already cached in $(libs_dir) (no download)"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn (Maven 3.6+) is needed for the first fetch"
  mkdir -p -- "$LIBS_ROOT"
  local tmp mvn_log target
  target=$(libs_dir)
  tmp=$(mktemp -d "$LIBS_ROOT/.fetch-$KAFKA_VERSION.XXXXXX")
  mvn_log="$tmp.mvn.log"
  log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION + runtime deps + log4j2 binding from Maven Central ..."
  if ! mvn -B -q -Dstyle.color=never -f "$POM_FILE" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" -Dkafka.version="$KAFKA_VERSION" \
    >"$mvn_log" 2>&1; then
    show_tail "$mvn_log" 40
    rm -rf -- "$tmp" "$mvn_log"
    die "Maven could not resolve kafka_2.13:$KAFKA_VERSION (see output above)"
  fi
  rm -f -- "$mvn_log"

  local kafka_jar="$tmp/kafka_2.13-$KAFKA_VERSION.jar" cls
  [[ -f $kafka_jar ]] || { rm -rf -- "$tmp"; die "kafka_2.13-$KAFKA_VERSION.jar missing after resolve"; }
  for cls in kafka/Kafka.class kafka/tools/StorageTool.class; do
    jar_lists "$kafka_jar" "$cls" || { rm -rf -- "$tmp"; die "$cls not found in $kafka_jar"; }
  done
  # The broker logs through SLF4J; make sure the binding matches the resolved slf4j-api.
  local slf4j
  slf4j=$(find "$tmp" -maxdepth 1 -name 'slf4j-api-*.jar' -exec basename {} \; | head -n 1)
  case $slf4j in
    slf4j-api-1.*)
      compgen -G "$tmp/log4j-slf4j-impl-*.jar" >/dev/null ||
        { rm -rf -- "$tmp"; die "$slf4j resolved but log4j-slf4j-impl (its log4j2 binding) is missing"; }
      ;;
    slf4j-api-2.*)
      rm -rf -- "$tmp"
      die "$slf4j resolved: switch log4j-slf4j-impl to log4j-slf4j2-impl in $POM_FILE"
      ;;
    *) warn "no slf4j-api jar resolved; broker logging may be disabled" ;;
  esac

  if have_jars; then
    # A concurrent fetch into a shared KAFKA_LIBS_DIR finished first; keep its (identical) jars.
    rm -rf -- "$tmp"
    log "jars for kafka_2.13 $KAFKA_VERSION were cached by a concurrent fetch"
    return 0
  fi
  rm -rf -- "$target"
  mv -- "$tmp" "$target"
  stamp_key >"$target/.openqoe-fetched"
  log "cached $(find "$target" -maxdepth 1 -name '*.jar' | wc -l | tr -d ' ') jars ($(du -sh "$target" | cut -f1)) in $target"
}

# ----------------------------------------------------------------------------------------------
# readiness probe (Java, compiled once per Kafka version against its kafka-clients)

probe_source() {
  cat <<'JAVA'
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** deploy/kafka-local.sh readiness probe: create topic if missing, produce, read back, commit. */
public final class OpenQoeKafkaProbe {
  public static void main(String[] args) {
    if (args.length != 3) {
      System.err.println("usage: OpenQoeKafkaProbe <bootstrap> <topic> <timeout-ms>");
      System.exit(2);
    }
    try {
      System.out.println(run(args[0], args[1], Long.parseLong(args[2])));
      System.exit(0);
    } catch (Throwable t) {
      Throwable cause = t instanceof ExecutionException && t.getCause() != null ? t.getCause() : t;
      System.err.println("probe failed: " + cause);
      System.exit(1);
    }
  }

  private static long left(long deadline) {
    long ms = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
    if (ms <= 0) throw new IllegalStateException("probe timed out");
    return ms;
  }

  private static Properties base(String bootstrap, long timeoutMs) {
    Properties p = new Properties();
    p.put("bootstrap.servers", bootstrap);
    p.put("client.id", "openqoe-kafka-probe");
    p.put("request.timeout.ms", String.valueOf(Math.min(5000L, timeoutMs)));
    p.put("default.api.timeout.ms", String.valueOf(timeoutMs));
    p.put("reconnect.backoff.max.ms", "500");
    return p;
  }

  static String run(String bootstrap, String topic, long timeoutMs) throws Exception {
    long started = System.nanoTime();
    long deadline = started + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
    try (Admin admin = Admin.create(base(bootstrap, timeoutMs))) {
      NewTopic nt = new NewTopic(topic, 1, (short) 1)
          .configs(Map.of("retention.ms", "3600000", "segment.bytes", "1048576"));
      admin.createTopics(List.of(nt)).all().get(left(deadline), TimeUnit.MILLISECONDS);
    } catch (ExecutionException e) {
      if (!(e.getCause() instanceof TopicExistsException)) throw e;
    }
    TopicPartition tp = new TopicPartition(topic, 0);
    String token = "openqoe-probe-" + UUID.randomUUID();

    Properties pp = base(bootstrap, timeoutMs);
    pp.remove("default.api.timeout.ms");
    pp.put("acks", "all");
    pp.put("linger.ms", "0");
    pp.put("enable.idempotence", "false");
    pp.put("max.block.ms", String.valueOf(timeoutMs));
    pp.put("delivery.timeout.ms", String.valueOf(Math.max(timeoutMs, 5000L)));
    RecordMetadata md;
    try (KafkaProducer<String, String> producer =
        new KafkaProducer<>(pp, new StringSerializer(), new StringSerializer())) {
      md = producer.send(new ProducerRecord<>(topic, 0, "probe", token))
          .get(left(deadline), TimeUnit.MILLISECONDS);
    }

    Properties cp = base(bootstrap, timeoutMs);
    cp.put("group.id", "__openqoe_probe");
    cp.put("enable.auto.commit", "false");
    cp.put("auto.offset.reset", "earliest");
    try (KafkaConsumer<String, String> consumer =
        new KafkaConsumer<>(cp, new StringDeserializer(), new StringDeserializer())) {
      consumer.assign(List.of(tp));
      consumer.seek(tp, md.offset());
      while (true) {
        for (ConsumerRecord<String, String> r :
            consumer.poll(Duration.ofMillis(Math.min(500L, left(deadline))))) {
          if (token.equals(r.value())) {
            consumer.commitSync(Map.of(tp, new OffsetAndMetadata(r.offset() + 1)),
                Duration.ofMillis(left(deadline)));
            long took = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
            return "produced and consumed " + topic + "-0@" + r.offset() + " in " + took + " ms";
          }
        }
      }
    }
  }
}
JAVA
}

# Compiles the probe into $OPENQOE_KAFKA_HOME/probe/<version>/ unless already compiled from the
# same source. Prints nothing; dies on failure.
ensure_probe() {
  local version=$1 dir src libs
  libs=$(libs_dir "$version")
  dir="$OPENQOE_KAFKA_HOME/probe/$version"
  src="$dir/$PROBE_CLASS.java"
  if [[ -f $dir/$PROBE_CLASS.class && -f $src ]] && probe_source | cmp -s - "$src"; then
    return 0
  fi
  command -v "$JAVAC" >/dev/null 2>&1 || die "javac not found: the readiness probe needs a JDK 17+ (set JAVA_HOME)"
  mkdir -p -- "$dir"
  rm -f -- "$dir"/*.class
  probe_source >"$src"
  if ! "$JAVAC" -nowarn -encoding UTF-8 -cp "$libs/*" -d "$dir" "$src" 2>"$dir/javac.log"; then
    cat -- "$dir/javac.log" >&2
    rm -f -- "$src"
    die "could not compile the readiness probe"
  fi
}

# probe <version> <timeout-seconds>: one produce+consume round trip; output goes to $PROBE_LOG.
probe() {
  local version=$1 timeout_s=$2 libs
  libs=$(libs_dir "$version")
  mkdir -p -- "$LOG_DIR"
  "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -Dlog4j2.level=ERROR \
    -cp "$OPENQOE_KAFKA_HOME/probe/$version:$libs/*" "$PROBE_CLASS" \
    "$KAFKA_HOST:$KAFKA_PORT" "$PROBE_TOPIC" "$((timeout_s * 1000))" >"$PROBE_LOG" 2>&1
}

# wait_ready <pid> <version>: poll until the probe succeeds, the process dies or the deadline passes.
wait_ready() {
  local pid=$1 version=$2 deadline remaining attempt=0
  deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  while :; do
    if ! is_our_broker "$pid"; then
      warn "broker process $pid exited during startup"
      return 1
    fi
    remaining=$((deadline - SECONDS))
    ((remaining > 0)) || break
    if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
      attempt=$((attempt + 1))
      if probe "$version" "$((remaining < 20 ? remaining : 20))"; then
        log "ready: $(tail -n 1 -- "$PROBE_LOG") (probe attempt $attempt)"
        return 0
      fi
    fi
    sleep 1
  done
  warn "broker not ready after ${KAFKA_START_TIMEOUT}s (KAFKA_START_TIMEOUT)"
  return 1
}

# ----------------------------------------------------------------------------------------------
# start / stop / status

render_config() {
  mkdir -p -- "$CONFIG_DIR"
  local line out="$CONFIG_FILE.tmp"
  {
    printf '# GENERATED by deploy/kafka-local.sh from %s - edit the template instead.\n' "$PROPS_TEMPLATE"
    while IFS= read -r line || [[ -n $line ]]; do
      # Quoted replacements: no '&' expansion (bash 5.2 patsub_replacement).
      line=${line//@KAFKA_HOST@/"$KAFKA_HOST"}
      line=${line//@KAFKA_PORT@/"$KAFKA_PORT"}
      line=${line//@KAFKA_CONTROLLER_PORT@/"$KAFKA_CONTROLLER_PORT"}
      line=${line//@KAFKA_DATA_DIR@/"$DATA_DIR"}
      printf '%s\n' "$line"
    done <"$PROPS_TEMPLATE"
  } >"$out"
  mv -- "$out" "$CONFIG_FILE"
}

log4j_opts() {
  printf '%s\n' "-Dlog4j2.configurationFile=$LOG4J_CONFIG" "-Dkafka.logs.dir=$LOG_DIR"
}

format_storage() {
  local libs cluster_id fmt_log="$LOG_DIR/storage-format.log"
  libs=$(libs_dir)
  if [[ -f $DATA_DIR/meta.properties ]]; then
    log "storage already formatted ($(grep -E '^cluster\.id=' "$DATA_DIR/meta.properties" || echo 'cluster.id=?')); keeping data in $DATA_DIR"
    return 0
  fi
  if [[ -d $DATA_DIR ]] && [[ -n "$(ls -A -- "$DATA_DIR")" ]]; then
    die "$DATA_DIR is not empty but has no meta.properties; move it away (or delete it) and retry"
  fi
  mkdir -p -- "$DATA_DIR"
  local -a l4j
  while IFS= read -r line; do l4j+=("$line"); done < <(log4j_opts)
  cluster_id=$("$JAVA" "${l4j[@]}" -cp "$libs/*" kafka.tools.StorageTool random-uuid 2>>"$fmt_log" | tail -n 1)
  [[ $cluster_id =~ ^[A-Za-z0-9_-]{22}$ ]] || { show_tail "$fmt_log"; die "StorageTool random-uuid failed"; }
  log "formatting storage in $DATA_DIR (cluster.id=$cluster_id)"
  if ! "$JAVA" "${l4j[@]}" -cp "$libs/*" kafka.tools.StorageTool format \
    -t "$cluster_id" -c "$CONFIG_FILE" >>"$fmt_log" 2>&1; then
    show_tail "$fmt_log"
    die "kafka-storage format failed"
  fi
}

check_ports_free() {
  local port
  for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if port_open "$KAFKA_HOST" "$port"; then
      die "port $KAFKA_HOST:$port is already in use by another process (set KAFKA_PORT / KAFKA_CONTROLLER_PORT)"
    fi
  done
}

cmd_start() {
  validate_config
  with_lock
  local pid version
  if pid=$(running_pid); then
    version=$(running_version)
    ensure_probe "$version"
    if probe "$version" 10; then
      log "already running (pid $pid, kafka $version) and ready; nothing to do"
      print_endpoints
      return 0
    fi
    log "already running (pid $pid) but not ready yet; waiting up to ${KAFKA_START_TIMEOUT}s"
    if wait_ready "$pid" "$version"; then
      print_endpoints
      return 0
    fi
    show_tail "$SERVER_LOG" 40
    show_tail "$PROBE_LOG" 10
    die "broker pid $pid is running but not ready; try: $0 restart"
  fi

  cmd_fetch
  require_java
  [[ -f $PROPS_TEMPLATE ]] || die "missing $PROPS_TEMPLATE"
  check_ports_free
  mkdir -p -- "$DATA_DIR" "$LOG_DIR" "$RUN_DIR"
  render_config
  format_storage
  ensure_probe "$KAFKA_VERSION"

  local -a heap jvm l4j
  local line
  read -r -a heap <<<"$KAFKA_HEAP"
  read -r -a jvm <<<"$KAFKA_JVM_OPTS"
  while IFS= read -r line; do l4j+=("$line"); done < <(log4j_opts)
  : >"$PROBE_LOG"
  printf '\n===== %s starting kafka %s =====\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$KAFKA_VERSION" >>"$OUT_FILE"
  # SIGINT/SIGQUIT are ignored for background jobs of a non-interactive shell and nohup ignores
  # SIGHUP, so the JVM only reacts to SIGTERM (clean shutdown) - exactly what `stop` sends.
  nohup "$JAVA" "${heap[@]}" "${jvm[@]}" "${l4j[@]}" \
    -cp "$(libs_dir)/*" kafka.Kafka "$CONFIG_FILE" </dev/null >>"$OUT_FILE" 2>&1 9>&- &
  pid=$!
  printf '%s\n' "$pid" >"$PID_FILE"
  printf '%s\n' "$KAFKA_VERSION" >"$RUN_VERSION_FILE"
  log "started kafka $KAFKA_VERSION (pid $pid); waiting up to ${KAFKA_START_TIMEOUT}s for produce+consume readiness ..."

  if ! wait_ready "$pid" "$KAFKA_VERSION"; then
    show_tail "$SERVER_LOG" 40
    show_tail "$OUT_FILE" 20
    show_tail "$PROBE_LOG" 10
    if is_our_broker "$pid"; then
      warn "stopping the half-started broker"
      stop_pid "$pid" || true
    fi
    rm -f -- "$PID_FILE" "$RUN_VERSION_FILE"
    die "kafka did not become ready; full logs in $LOG_DIR"
  fi
  print_endpoints
}

# stop_pid <pid>: SIGTERM, wait up to KAFKA_STOP_TIMEOUT, then SIGKILL.
stop_pid() {
  local pid=$1 deadline
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
  while is_our_broker "$pid"; do
    if ((SECONDS >= deadline)); then
      warn "pid $pid still alive ${KAFKA_STOP_TIMEOUT}s after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
      while is_our_broker "$pid"; do
        ((SECONDS < deadline)) || die "pid $pid survived SIGKILL"
        sleep 0.5
      done
      return 1
    fi
    sleep 0.5
  done
  return 0
}

cmd_stop() {
  validate_config
  with_lock
  local pid start=$SECONDS
  if ! pid=$(running_pid); then
    log "not running"
    return 0
  fi
  log "stopping kafka (pid $pid) with SIGTERM (timeout ${KAFKA_STOP_TIMEOUT}s) ..."
  if stop_pid "$pid"; then
    log "stopped cleanly in $((SECONDS - start))s"
  else
    warn "killed with SIGKILL; the next start will recover the logs"
  fi
  rm -f -- "$PID_FILE" "$RUN_VERSION_FILE"
}

cmd_status() {
  validate_config
  local pid version
  if ! pid=$(running_pid); then
    log "not running"
    return 3
  fi
  version=$(running_version)
  ensure_probe "$version"
  if probe "$version" 10; then
    log "running and ready (pid $pid, kafka $version): $(tail -n 1 -- "$PROBE_LOG")"
    print_endpoints
    return 0
  fi
  log "running (pid $pid) but NOT ready: $(tail -n 1 -- "$PROBE_LOG")"
  return 1
}

cmd_logs() {
  log "server log : $SERVER_LOG"
  log "also       : $LOG_DIR/{controller.log,state-change.log,kafka.out,probe.log,storage-format.log}"
  [[ -f $SERVER_LOG ]] || { log "(no server.log yet)"; return 0; }
  if [[ ${1:-} == -f ]]; then
    exec tail -n 50 -F -- "$SERVER_LOG"
  fi
  tail -n "${KAFKA_LOG_LINES:-50}" -- "$SERVER_LOG"
}

main() {
  local cmd=${1:-help}
  [[ $# -gt 0 ]] && shift
  case $cmd in
    fetch) cmd_fetch ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart)
      cmd_stop
      cmd_start
      ;;
    status) cmd_status ;;
    logs) cmd_logs "$@" ;;
    help | -h | --help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
