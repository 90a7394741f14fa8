#!/usr/bin/env bash
# deploy/cortex/build.sh - build Cortex (Apache-2.0; the project Mimir was forked from: same
# /api/v1/push, X-Scope-OrgID tenancy, ruler API and /prometheus/api/v1/query) from the Go
# module proxy, once per version, and print the binary's path.
#
# Usage: deploy/cortex/build.sh            build if needed, print the binary's path
#
# Environment (defaults in brackets):
#   CORTEX_VERSION        module version of github.com/cortexproject/cortex   [v1.21.1]
#   OPENQOE_CORTEX_HOME   where the binary goes: <home>/<version>/cortex      [<repo>/.local/cortex]
#   OPENQOE_CACHE_DIR     shared cache, reused by fresh clones on one machine [$HOME/.cache/openqoe]
#
# Why not `go install ...@version`: Cortex's go.mod has replace directives, which `go install`
# refuses. Building inside a writable copy of the downloaded module with -mod=mod works.
# Why the tags: `slicelabels` selects the labels implementation Cortex's push path needs (without
# it the binary crashes on the first push); `netgo` gives a static binary. A build takes about
# four minutes and 100 MB of module cache.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/../.." && pwd -P)
readonly SCRIPT_DIR REPO_ROOT

CORTEX_VERSION=${CORTEX_VERSION:-v1.21.1}
OPENQOE_CORTEX_HOME=${OPENQOE_CORTEX_HOME:-$REPO_ROOT/.local/cortex}
OPENQOE_CACHE_DIR=${OPENQOE_CACHE_DIR:-${HOME:-/root}/.cache/openqoe}
readonly MODULE=github.com/cortexproject/cortex

target="$OPENQOE_CORTEX_HOME/$CORTEX_VERSION/cortex"
cached="$OPENQOE_CACHE_DIR/cortex/$CORTEX_VERSION/cortex"

log() { echo "cortex-build: $*" >&2; }

if [[ -x $target ]]; then
  echo "$target"
  exit 0
fi
mkdir -p "$(dirname "$target")"
if [[ -x $cached ]]; then
  log "reusing $cached"
  cp "$cached" "$target.tmp" && mv "$target.tmp" "$target"
  echo "$target"
  exit 0
fi

if ! command -v go >/dev/null; then
  log "needs Go 1.25 or newer on PATH (Cortex $CORTEX_VERSION's go.mod): https://go.dev/dl/"
  exit 1
fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/openqoe-cortex-build.XXXXXX")
trap 'chmod -R u+w "$workdir" 2>/dev/null; rm -rf "$workdir"' EXIT

log "downloading $MODULE@$CORTEX_VERSION from ${GOPROXY:-$(go env GOPROXY)}"
# Outside any module, so the download is not tied to this repository.
module_dir=$(cd "$workdir" && GOFLAGS= go mod download -json "$MODULE@$CORTEX_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
if [[ -z $module_dir || ! -d $module_dir ]]; then
  log "go mod download did not report a module directory for $MODULE@$CORTEX_VERSION"
  exit 1
fi

# The module cache is read-only; go build with -mod=mod may need to update go.sum.
cp -r "$module_dir" "$workdir/src"
chmod -R u+w "$workdir/src"

log "building $MODULE/cmd/cortex $CORTEX_VERSION (takes a few minutes)"
(
  cd "$workdir/src"
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -tags netgo,slicelabels \
    -ldflags "-s -w -X main.Version=${CORTEX_VERSION#v} -X main.Branch=module-proxy" \
    -o "$workdir/cortex" ./cmd/cortex
)
built=$("$workdir/cortex" -version 2>/dev/null | head -1)
if [[ $built != *"version ${CORTEX_VERSION#v} "* ]]; then
  log "the built binary reports '$built', expected version ${CORTEX_VERSION#v}"
  exit 1
fi

mv "$workdir/cortex" "$target.tmp" && mv "$target.tmp" "$target"
if mkdir -p "$(dirname "$cached")" 2>/dev/null && cp "$target" "$cached.tmp" 2>/dev/null; then
  mv "$cached.tmp" "$cached"
  log "cached in $cached"
fi
echo "$target"
