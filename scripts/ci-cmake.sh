#!/usr/bin/env bash
# Check the CMake build (CMakeLists.txt via cmake-js) of the native shim: in a throwaway copy
# of this checkout, install deps without running node-gyp, build the addon with
# `cmake-js compile`, compile the TypeScript and run the KVM API test against that addon.
# Never touches this checkout's build/ or dist/. Exits non-zero on any failure.
#
#   bash scripts/ci-cmake.sh            # KEEP=1 keeps the temp copy for inspection
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/node-kvm-cmake.XXXXXX")"
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then echo "ci-cmake: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

log() { echo "ci-cmake: $*"; }

for tool in cmake node npm tar; do
  command -v "$tool" >/dev/null || { log "missing tool: $tool"; exit 1; }
done

# 1. Copy the checkout (sources only: no node_modules, build output or git metadata).
log "copying $ROOT -> $WORK"
tar -C "$ROOT" \
  --exclude=./node_modules --exclude=./examples/vitest/node_modules --exclude=./build --exclude=./dist --exclude=./.git \
  -cf - . | tar -C "$WORK" -xf -
cd "$WORK"

# 2. Dependencies, without lifecycle scripts (the install script would run node-gyp).
log "npm ci --ignore-scripts"
npm ci --ignore-scripts --no-audit --no-fund

# 3. cmake-js downloads Node headers from the network unless npm's `nodedir` points at a
#    prefix holding include/node/node_api.h; default it to the running node's prefix.
if [ -z "${npm_config_nodedir:-}" ]; then
  prefix="$(node -p "require('path').resolve(process.execPath, '..', '..')")"
  if [ -f "$prefix/include/node/node_api.h" ]; then
    export npm_config_nodedir="$prefix"
  else
    log "warning: no Node headers under $prefix/include/node; cmake-js will try to download them"
  fi
fi
log "cmake-js compile (nodedir=${npm_config_nodedir:-<download>})"
./node_modules/.bin/cmake-js compile
addon="$WORK/build/Release/node_kvm.node"
[ -f "$addon" ] || { log "cmake-js did not produce $addon"; exit 1; }
[ ! -e "$WORK/build/Makefile" ] || { log "unexpected node-gyp output in $WORK/build"; exit 1; }

# 4. TypeScript, then the KVM API test against the cmake-built addon.
log "tsc"
./node_modules/.bin/tsc -p tsconfig.json
loaded="$(node --input-type=module -e "
  const { native } = await import('./dist/lib/native.js');
  native();
  const { readFileSync } = await import('node:fs');
  const line = readFileSync('/proc/self/maps', 'utf8').split('\n').find((l) => l.endsWith('node_kvm.node'));
  console.log(line ? line.split(/\s+/).pop() : '');
")"
[ "$loaded" = "$addon" ] || { log "loaded addon '$loaded', expected '$addon'"; exit 1; }
log "addon loads from $loaded"
[ -e /dev/kvm ] || log "warning: /dev/kvm absent: KVM tests will be skipped"
log "node --test dist/test/kvm/api.test.js"
node --test dist/test/kvm/api.test.js
log "ok"
