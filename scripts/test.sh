#!/usr/bin/env bash
# Builds and runs the whole test suite: a warnings-as-errors release build, then the
# same suite under AddressSanitizer + UndefinedBehaviorSanitizer. With nvcc on PATH
# (or in /usr/local/cuda) the CUDA code is compiled too (its tests skip without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)

echo "== release build (-Wall -Wextra -Werror) =="
cmake --preset ci >/dev/null
cmake --build build/ci -j"$jobs"
ctest --preset ci -j"$jobs"

if [ "${SSM_SKIP_ASAN:-0}" != "1" ]; then
  echo "== asan + ubsan build =="
  cmake --preset asan >/dev/null
  cmake --build build/asan -j"$jobs"
  ctest --preset asan -j"$jobs"
fi
