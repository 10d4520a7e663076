#!/usr/bin/env bash
# The test command: sets the machine up if needed (idempotent), then runs the
# whole suite. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYTHONUNBUFFERED=1
exec .venv/bin/python -m pytest -q "$@"
