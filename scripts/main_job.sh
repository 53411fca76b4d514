#!/usr/bin/env bash
# README's main job: install, build, then run ssm.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release -DSSM_BUILD_TESTS=OFF -DSSM_BUILD_BENCH=OFF >/dev/null
cmake --build build/release -j"$(nproc)" --target ssm_cli
./build/release/ssm info
