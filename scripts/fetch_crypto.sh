#!/usr/bin/env bash
# Fetch the C crypto sources of the inference-module loader
# (platformio_tinyml/module/runtime verifies Ed25519 signatures with them)
# from PyPI sdists into git-ignored third_party/. Never commit the fetched
# files. Idempotent: a folder whose VERSION matches is left alone.
#
#  third_party/monocypher/  monocypher.c/.h, LICENSE.txt
#      Monocypher 4 (BSD-2-Clause OR CC0-1.0): curve arithmetic, from the
#      sdist of pymonocypher (which lacks Monocypher's optional SHA-512 file).
#  third_party/libsodium/   hash_sha512_cp.c, crypto_hash_sha512.h, utils.h,
#                           export.h, private/common.h, LICENSE
#      libsodium (ISC) portable SHA-512, from the sdist of PyNaCl (PyCA),
#      which bundles libsodium's source tree.
#
# Each sdist is pinned by version and SHA-256 (pip --require-hashes) and the
# licence text of each extracted file set is checked.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

MONOCYPHER_PKG=pymonocypher==4.0.3.5
MONOCYPHER_SHA256=b6f96c4fa56212a7c13aee8fc27a89d7531b622ce8aabbd6e82a9d2e93071d71
SODIUM_PKG=pynacl==1.6.2
SODIUM_SHA256=018494d6d696ae03c7e656e5e74cdfd8ea1326962cc401bcf018f1ed8436811c
SODIUM_VERSION=1.0.20            # libsodium inside that PyNaCl sdist

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

DEST=third_party/libsodium
STAMP="$SODIUM_PKG libsodium-$SODIUM_VERSION"
if ! { [ -f "$DEST/hash_sha512_cp.c" ] && grep -qx "$STAMP" "$DEST/VERSION" 2>/dev/null; }; then
  src=$(sdist "$SODIUM_PKG" "$SODIUM_SHA256")/src/libsodium
  grep -q "AC_INIT(\[libsodium\],\[$SODIUM_VERSION\]" "$src/configure.ac" \
    || die "the $SODIUM_PKG sdist does not hold libsodium $SODIUM_VERSION"
  grep -q "^ \* ISC License" "$src/LICENSE" || die "unexpected libsodium LICENSE"
  lib=$src/src/libsodium
  inc=$lib/include/sodium
  rm -rf "$DEST"; mkdir -p "$DEST/private"
  cp "$lib/crypto_hash/sha512/cp/hash_sha512_cp.c" "$inc/crypto_hash_sha512.h" \
     "$inc/utils.h" "$inc/export.h" "$src/LICENSE" "$DEST/"
  cp "$inc/private/common.h" "$DEST/private/"
  echo "$STAMP" > "$DEST/VERSION"
  say "$DEST: hash_sha512_cp.c crypto_hash_sha512.h utils.h export.h private/common.h LICENSE"
fi
