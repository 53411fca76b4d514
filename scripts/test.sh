#!/usr/bin/env bash
# Builds and runs the whole test suite: a warnings-as-errors release build, then the
# same suite under AddressSanitizer + UndefinedBehaviorSanitizer. With nvcc on PATH
# (or in /usr/local/cuda) the CUDA code is compiled too (its tests skip without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)

# The CUDA backend joins the release build when nvcc is found (compiled for sm_80 and sm_90;
# its tests skip without a GPU); the sanitiser build stays CPU-only.
cuda_flags=()
nvcc=$(command -v nvcc || true)
if [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ]; then nvcc=/usr/local/cuda/bin/nvcc; fi
if [ -n "$nvcc" ] && [ "${SSM_SKIP_CUDA:-0}" != "1" ]; then
  echo "== CUDA backend on: $nvcc =="
  cuda_flags=(-DSSM_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" "-DCMAKE_CUDA_ARCHITECTURES=80;90")
else
  cuda_flags=(-DSSM_CUDA=OFF)
fi

echo "== release build (-Wall -Wextra -Werror) =="
cmake --preset ci "${cuda_flags[@]}" >/dev/null
cmake --build build/ci -j"$jobs"
ctest --preset ci -j"$jobs"

if [ "${SSM_SKIP_ASAN:-0}" != "1" ]; then
  echo "== asan + ubsan build =="
  cmake --preset asan >/dev/null
  cmake --build build/asan -j"$jobs"
  ctest --preset asan -j"$jobs"
fi
