#!/usr/bin/env bash
# Check (and, as root on Debian/Ubuntu, install) what the two README commands need, before
# anything is started. Sourced or run by scripts/run-local.sh ("run") and scripts/test.sh
# ("test"); `bash scripts/prereqs.sh test` on its own just checks.
#
# Exits non-zero with the exact install command when something is missing and cannot be
# installed here (not root, or no apt-get).
set -euo pipefail

purpose=${1:-run}
extra=${2:-} # "demo": also what run-local.sh's player demo pages need (Node.js, npm, ffmpeg)
missing=() # "what|debian package"

have() { command -v "$1" >/dev/null 2>&1; }

java_major() {
  # `java -version` prints e.g. 'openjdk version "17.0.15" 2025-04-15' on stderr.
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1
}

check() {
  missing=()
  local py=${PYTHON:-python3}
  if ! have "$py" || ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    missing+=("Python 3.11+|python3")
  elif ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    missing+=("the Python venv module|python3-venv")
  fi
  if ! have java || [[ $(java_major) -lt 17 ]] 2>/dev/null; then
    missing+=("Java 17+ (a JDK)|openjdk-17-jdk-headless")
  elif ! have javac; then
    missing+=("javac (the Kafka readiness probe compiles a small client; a JRE is not enough)|openjdk-17-jdk-headless")
  fi
  have mvn || missing+=("Maven 3.6+ (fetches the Kafka jars from Maven Central)|maven")
  have curl || missing+=("curl|curl")
  { have prometheus && have promtool; } || missing+=("Prometheus and promtool (the local metrics store)|prometheus")
  if [[ $purpose == test || $extra == demo ]]; then
    have node || missing+=("Node.js 18+|nodejs")
    have npm || missing+=("npm|npm")
    have ffmpeg || missing+=("ffmpeg (generates the test and demo media)|ffmpeg")
  fi
  if [[ $purpose == test ]]; then
    # The player SDK's browser tests: Debian's Chromium, never a downloaded browser.
    [[ -x /usr/bin/chromium ]] || missing+=("Chromium at /usr/bin/chromium (the SDK's browser tests)|chromium")
  fi
}

# Go builds Cortex for the multi-tenant tests (deploy/cortex/build.sh); Debian's golang is
# older than the 1.25 Cortex needs, so it is not installed from apt.
if [[ $purpose == test ]]; then
  go_minor=$(go env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
  if [[ -z $go_minor ]] || ((go_minor < 25)); then
    echo "[prereqs] Go 1.25+ is needed to build Cortex for the tests (found: $(go env GOVERSION 2>/dev/null || echo none)); install it from the Go project's release tarballs" >&2
    exit 1
  fi
fi

check
if ((${#missing[@]} == 0)); then
  exit 0
fi

packages=()
for item in "${missing[@]}"; do
  pkg=${item#*|}
  [[ " ${packages[*]} " == *" $pkg "* ]] || packages+=("$pkg")
done

if [[ $(id -u) -eq 0 ]] && have apt-get; then
  echo "[prereqs] installing: ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${packages[@]}"
  # Debian's prometheus package starts a system service on :9090 where systemd runs; our
  # scripts start their own instances, so that service is left alone (run-local.sh picks
  # another port when 9090 is taken).
  check
  ((${#missing[@]} == 0)) && exit 0
fi

echo "[prereqs] missing, nothing was started:" >&2
for item in "${missing[@]}"; do echo "  - ${item%|*}" >&2; done
echo "[prereqs] install them with:  sudo apt-get install ${packages[*]}" >&2
exit 1
