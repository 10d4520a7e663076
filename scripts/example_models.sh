#!/usr/bin/env bash
# Put the example projects' model in place: MLPerf Tiny's keyword-spotting DS-CNN
# (kws_ref_model.tflite, Apache-2.0, mlcommons/tiny) from the shared model folder
# beside the checkout ($TINYML_SHARED, default ../shared), checked by SHA-256.
# The copies are git-ignored: third-party models are never committed. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

SHARED=${TINYML_SHARED:-../shared}
SRC=$SHARED/models/mlperf_tiny/kws_ref_model.tflite
SHA=aeea436800704fce17b17292e4412630ad856e9d777c044c64ef748a880bd0ae
EXAMPLES="kws-cortex-m4 kws-cortex-m55 nucleo-f446re scons-cortex-m4"

die() { echo "[example_models] $*" >&2; exit 1; }

[ -f "$SRC" ] || die "$SRC not found: the example projects need MLPerf Tiny's kws_ref_model.tflite (set TINYML_SHARED to the folder holding models/mlperf_tiny)"
echo "$SHA  $SRC" | sha256sum --check --status || die "$SRC does not have the expected SHA-256 $SHA"
for ex in $EXAMPLES; do
  dest=example_projects/$ex/kws_ref_model.tflite
  if ! cmp -s "$SRC" "$dest"; then
    cp "$SRC" "$dest"
  fi
done
echo "[example_models] kws_ref_model.tflite in example_projects/{${EXAMPLES// /,}}"
