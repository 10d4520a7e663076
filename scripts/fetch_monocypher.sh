#!/usr/bin/env bash
# Fetch Monocypher's C sources (monocypher.c/.h, BSD-2-Clause OR CC0-1.0) from
# the PyPI sdist of pymonocypher into third_party/monocypher/ (git-ignored).
# The inference-module loader (platformio_tinyml/module/runtime) verifies
# Ed25519 signatures with them. Idempotent; never commit the fetched files.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.0.3.5
DEST=third_party/monocypher
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

if [ -f "$DEST/monocypher.c" ] && grep -qx "$VERSION" "$DEST/VERSION" 2>/dev/null; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "[fetch_monocypher] pip download pymonocypher==$VERSION (sdist)"
# The sdist declares Requires-Python ~=3.12; we only take its C files.
"$PY" -m pip download -q --no-binary :all: --no-deps --ignore-requires-python \
  "pymonocypher==$VERSION" -d "$tmp"
tar -xzf "$tmp/pymonocypher-$VERSION.tar.gz" -C "$tmp"
src="$tmp/pymonocypher-$VERSION"
grep -q "SPDX-License-Identifier: BSD-2-Clause OR CC0-1.0" "$src/monocypher.c" || {
  echo "[fetch_monocypher] unexpected licence header in monocypher.c" >&2; exit 1; }
mkdir -p "$DEST"
cp "$src/monocypher.c" "$src/monocypher.h" "$src/LICENSE.txt" "$DEST/"
echo "$VERSION" > "$DEST/VERSION"
echo "[fetch_monocypher] $DEST: monocypher.c monocypher.h LICENSE.txt"
