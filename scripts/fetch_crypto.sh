#!/usr/bin/env bash
# Fetch the C crypto sources of the inference-module loader
# (platformio_tinyml/module/runtime verifies Ed25519 signatures with them)
# from PyPI sdists into git-ignored third_party/. Never commit the fetched
# files. Idempotent: a folder whose VERSION matches is left alone.
#
#  third_party/monocypher/  monocypher.c/.h, LICENSE.txt
#      Monocypher 4 (BSD-2-Clause OR CC0-1.0): curve arithmetic, from the
#      sdist of pymonocypher (which lacks Monocypher's optional SHA-512 file).
#  third_party/hacl/        Hacl_Hash_SHA2.c and the headers it includes, LICENSE
#      HACL* (formally verified; generated C under MIT, karamel headers
#      Apache-2.0 and MIT): SHA-512, from the sdist of pyhacl, which bundles
#      HACL*'s dist/ tree. Chosen over libsodium's fully unrolled SHA-512
#      for size: about 2 KB of Cortex-M code instead of 8 KB (built with
#      KRML_UNROLL_MAX=0; the hash runs once per install, not per inference).
#
# Each sdist is pinned by version and SHA-256 (pip --require-hashes) and the
# licence text of each extracted file set is checked.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

MONOCYPHER_PKG=pymonocypher==4.0.3.5
MONOCYPHER_SHA256=b6f96c4fa56212a7c13aee8fc27a89d7531b622ce8aabbd6e82a9d2e93071d71
HACL_PKG=pyhacl==1.0.1
HACL_SHA256=2c7653b79fca0a00540602baeb2ab9774e4736de79561e67f755bcddf9ec7598

say() { echo "[fetch_crypto] $*"; }
die() { echo "[fetch_crypto] $*" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# sdist NAME==VERSION SHA256 -> unpacked folder on stdout
sdist() {
  local spec=$1 sha=$2 name=${1%%==*} version=${1##*==}
  say "pip download $spec (sdist, sha256 pinned)" >&2
  echo "$spec --hash=sha256:$sha" > "$tmp/$name.req"
  # pymonocypher declares Requires-Python ~=3.12; we only take C files.
  "$PY" -m pip download -q --no-binary :all: --no-deps --ignore-requires-python \
    --require-hashes -r "$tmp/$name.req" -d "$tmp/dl" >&2
  tar -xzf "$tmp/dl/$name-$version.tar.gz" -C "$tmp"
  echo "$tmp/$name-$version"
}

DEST=third_party/monocypher
if ! { [ -f "$DEST/monocypher.c" ] && grep -qx "$MONOCYPHER_PKG" "$DEST/VERSION" 2>/dev/null; }; then
  src=$(sdist "$MONOCYPHER_PKG" "$MONOCYPHER_SHA256")
  grep -q "SPDX-License-Identifier: BSD-2-Clause OR CC0-1.0" "$src/monocypher.c" \
    || die "unexpected licence header in monocypher.c"
  rm -rf "$DEST"; mkdir -p "$DEST"
  cp "$src/monocypher.c" "$src/monocypher.h" "$src/LICENSE.txt" "$DEST/"
  echo "$MONOCYPHER_PKG" > "$DEST/VERSION"
  say "$DEST: monocypher.c monocypher.h LICENSE.txt"
fi

DEST=third_party/hacl
HACL_DIST=hacl-star/dist
HACL_FILES="gcc-compatible/Hacl_Hash_SHA2.c gcc-compatible/Hacl_Hash_SHA2.h
  gcc-compatible/Hacl_Krmllib.h gcc-compatible/Hacl_Streaming_Types.h
  gcc-compatible/internal/Hacl_Hash_SHA2.h gcc-compatible/internal/Hacl_Krmllib.h
  gcc-compatible/internal/Hacl_Streaming_Types.h
  karamel/include/krml/internal/compat.h karamel/include/krml/internal/target.h
  karamel/include/krml/internal/types.h karamel/include/krml/lowstar_endianness.h
  karamel/krmllib/dist/minimal/FStar_UInt128_Verified.h
  karamel/krmllib/dist/minimal/FStar_UInt_8_16_32_64.h
  karamel/krmllib/dist/minimal/fstar_uint128_struct_endianness.h
  karamel/krmllib/dist/minimal/fstar_uint128_gcc64.h karamel/krmllib/dist/minimal/FStar_UInt128.h
  karamel/krmllib/dist/minimal/LowStar_Endianness.h"
if ! { [ -f "$DEST/Hacl_Hash_SHA2.c" ] && grep -qx "$HACL_PKG files2" "$DEST/VERSION" 2>/dev/null; }; then
  src=$(sdist "$HACL_PKG" "$HACL_SHA256")/$HACL_DIST
  grep -q "^/\* MIT License" "$src/gcc-compatible/Hacl_Hash_SHA2.c" || die "unexpected licence header in Hacl_Hash_SHA2.c"
  grep -q "Licensed under the Apache 2.0 and MIT Licenses" "$src/karamel/include/krml/internal/target.h" \
    || die "unexpected licence header in krml/internal/target.h"
  rm -rf "$DEST"; mkdir -p "$DEST"
  # Laid out as the files include each other: gcc-compatible/ and the two
  # karamel include roots merge into one folder.
  for f in $HACL_FILES; do
    rel=${f#gcc-compatible/}; rel=${rel#karamel/include/}; rel=${rel#karamel/krmllib/dist/minimal/}
    mkdir -p "$DEST/$(dirname "$rel")"
    cp "$src/$f" "$DEST/$rel"
  done
  cp "$src/../LICENSE" "$DEST/LICENSE"
  echo "$HACL_PKG files2" > "$DEST/VERSION"
  say "$DEST: HACL* SHA-2 (Hacl_Hash_SHA2.c + headers), karamel headers, LICENSE"
fi
