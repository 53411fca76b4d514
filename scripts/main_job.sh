#!/usr/bin/env bash
# README's main job: install what is needed, build, train a small S4D model on sequential
# Fashion-MNIST (pixel by pixel, L = 784) on the CPU, then evaluate it in both modes:
# convolution (parallel) and recurrent (token by token, as a streaming classifier).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release -DSSM_BUILD_TESTS=OFF -DSSM_BUILD_BENCH=OFF >/dev/null
cmake --build build/release -j"$(nproc)" --target ssm_cli
run="runs/sfmnist-s4d-$(date +%Y%m%d-%H%M%S)"
./build/release/ssm train configs/sfmnist-s4d.toml --out "$run"
./build/release/ssm eval "$run" --split test --mode conv
./build/release/ssm eval "$run" --split test --mode step --limit 500
echo "curves: $run/curves.svg   metrics: $run/metrics.jsonl"
