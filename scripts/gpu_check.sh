#!/usr/bin/env bash
# Runs on the lent GPU machine (the device tool's `run`), from the repository root:
#   bash scripts/gpu_check.sh probe   # the image: OS, GPU, libraries; torch ceilings + eager baseline
#   bash scripts/gpu_check.sh test    # CUDA tests and the CUDA benchmark from .devcarry/
#   bash scripts/gpu_check.sh all     # both
#
# How the binaries get there (the image has nvcc, CMake and PyTorch but none of our Debian
# libraries): they are built on the development machine with nvcc 13.0 for sm_90 and
# SSM_NATIVE=OFF (that machine's -march=native need not match this CPU), linked with
# --as-needed and the static CUDA runtime, and carried in the git-ignored folder .devcarry/
# (bin/ the executables, lib/ the few Debian shared libraries they load, from `ldd`):
#   scripts/gpu_pack.sh build/h-cuda        # on the development machine
# then `run` with carry [".devcarry"] and this script.
set -uo pipefail
mode=${1:-all}
out=${OUT:-/tmp/out}
mkdir -p "$out"

probe() {
  echo "== probe =="
  grep PRETTY_NAME /etc/os-release
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
  ldd --version | head -1
  ls /usr/lib/x86_64-linux-gnu | grep -E "libgomp|libfmt|libopenblas|libgfortran" || true
  python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())'
  PYTHONUNBUFFERED=1 python3 bench/torch_scan_gpu.py 2>&1 | tee "$out/torch_baseline.txt"
}

tests() {
  echo "== CUDA tests =="
  export LD_LIBRARY_PATH=$PWD/.devcarry/lib:/usr/local/cuda/lib64:/usr/local/cuda-13.0/targets/x86_64-linux/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  for t in .devcarry/bin/cuda_test_*; do
    echo "-- $t"
    "$t" --gtest_brief=0 2>&1 | tee -a "$out/tests.txt" | grep -E "parity|device:|PASSED|FAILED|SKIPPED|Failure|error|rel err" | head -80
  done
  echo "== CUDA benchmark =="
  # The scan's tuning knob (state entries per block-scan pass), every value, then the default.
  for k in 1 2 4; do
    echo "-- SSM_SCAN_STATES_PER_PASS=$k"
    SSM_SCAN_STATES_PER_PASS=$k .devcarry/bin/ssm_bench_cuda --reps 10 2>&1 | tee -a "$out/bench_cuda.txt" | grep -E "selective_scan|D2D"
  done
}

case "$mode" in
  probe) probe ;;
  test) tests ;;
  all) tests; probe ;;
esac
