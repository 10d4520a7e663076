#!/usr/bin/env bash
# The LwM2M peers the interop tests talk to, written by others: the npm package
# lwm2m-node-lib (a Node LwM2M client) into an ignored folder. Idempotent.
# Run by scripts/setup.sh; TINYML_NODE_PREFIX overrides the folder (default third_party/node).
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${TINYML_NODE_PREFIX:-third_party/node}
if [ -d "$PREFIX/node_modules/lwm2m-node-lib" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "[setup] npm missing: install nodejs and npm first" >&2; exit 1; }
mkdir -p "$PREFIX"
echo "[setup] npm: installing lwm2m-node-lib into $PREFIX"
npm install --silent --no-audit --no-fund --prefix "$PREFIX" lwm2m-node-lib@1.4.0 >/dev/null
