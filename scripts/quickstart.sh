#!/usr/bin/env bash
# Sets everything up on a fresh Debian machine, then builds the main example
# (the MLPerf Tiny keyword-spotting model in Cortex-M4 firmware) with real
# PlatformIO, offline, runs it in QEMU (mps2-an386) and checks the printed
# output against the TensorFlow Lite Micro reference interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
eval "$(tinyml setup-offline | grep '^export ')"
cd example_projects/kws-cortex-m4
pio run
pio run -t upload | tee .pio/upload.log
python - <<'PY'
import re
import numpy as np
from platformio_tinyml.verify.reference import TFLMReference

device = re.search(r"^output: (.*)$", open(".pio/upload.log").read(), re.M).group(1).split()
golden = TFLMReference("kws_ref_model.tflite").run([np.load("test_input.npy")])[0].reshape(-1)
print("reference (TFLite Micro):", " ".join(map(str, golden)))
same = [int(v) for v in device] == golden.tolist()
print("firmware output", "matches the reference bit for bit" if same else "DIFFERS from the reference")
raise SystemExit(0 if same else 1)
PY
