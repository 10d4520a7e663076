#!/usr/bin/env bash
# Sets everything up on a fresh Debian machine, then builds the main example
# (the MLPerf Tiny keyword-spotting model in Cortex-M4 firmware) with real
# PlatformIO, offline, and runs it in QEMU (mps2-an386).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
eval "$(tinyml setup-offline | grep "^export ")"
cd example_projects/kws-cortex-m4
pio run
pio run -t upload
