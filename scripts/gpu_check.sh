#!/usr/bin/env bash
# Runs on the lent GPU machine (the device tool's `run`), from the repository root:
#   bash scripts/gpu_check.sh probe   # the image: OS, GPU, libraries; torch ceilings + eager baseline
#   bash scripts/gpu_check.sh test    # CUDA tests and the CUDA benchmark from .devcarry/
#   bash scripts/gpu_check.sh all     # both
#   bash scripts/gpu_check.sh tests-only   # the CUDA tests, no benchmark
#   bash scripts/gpu_check.sh train SECONDS   # the synthetic tasks trained with --device cuda
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

if [ ! -d .devcarry ] && [ -f .devpack/devcarry.tar.xz ]; then xz -dc .devpack/devcarry.tar.xz | tar -xf -; fi
export LD_LIBRARY_PATH=$PWD/.devcarry/lib:/usr/local/cuda/lib64:/usr/local/cuda-13.0/targets/x86_64-linux/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

unit_tests() {
  echo "== CUDA tests =="
  for t in .devcarry/bin/cuda_test_*; do
    echo "-- $t"
    "$t" --gtest_brief=0 2>&1 | tee -a "$out/tests.txt" | grep -E "parity|trainer|device:|PASSED|FAILED|SKIPPED|Failure|error|rel err" | head -80
  done
}

# The papers' synthetic tasks at their settings, on the GPU, side by side, each stopped after
# $1 seconds (the run directory keeps its last checkpoint; metrics.jsonl every log line).
train_tasks() {
  local secs=${1:-300} ssm=.devcarry/bin/ssm runs=/tmp/runs
  mkdir -p $runs
  echo "== training on the GPU for ${secs} s each =="
  timeout "$secs" $ssm --threads 2 train configs/selective-copy-mamba.toml --device cuda --out $runs/sc \
    --set train.max_steps=100000 --set train.eval_every=500 --set data.train_size=800000 \
    --set train.log_every=100 >"$out/sc.log" 2>&1 &
  timeout "$secs" $ssm --threads 2 train configs/induction-heads-mamba.toml --device cuda --out $runs/ih \
    --set train.epochs=20 --set train.eval_every=500 --set train.log_every=100 >"$out/ih.log" 2>&1 &
  timeout "$secs" $ssm --threads 2 train configs/mqar-mamba2.toml --device cuda --out $runs/mqar \
    --set train.epochs=20 --set train.eval_every=500 --set train.log_every=100 >"$out/mqar.log" 2>&1 &
  wait
  for r in sc ih mqar; do
    cp $runs/$r/metrics.jsonl "$out/$r.metrics.jsonl" 2>/dev/null
    grep -E "validation|run |error" "$out/$r.log" | tail -4
  done
  for L in 256 1024 4096 16384 65536; do
    $ssm eval $runs/ih --device cuda --set data.eval_length=$L --limit 128 --batch-size 16 --json 2>&1 | tail -1
  done | tee "$out/ih_lengths.txt"
}

# Selective copying by a length curriculum (256 → 1024 → 4096, each stage from the previous
# one's last checkpoint, $1 seconds each) beside MQAR for 3·$1 seconds.
train_curriculum() {
  local secs=${1:-90} ssm=.devcarry/bin/ssm runs=/tmp/runs
  mkdir -p $runs
  echo "== selective copying curriculum and MQAR on the GPU =="
  timeout $((3 * secs)) $ssm --threads 2 train configs/mqar-mamba2.toml --device cuda --out $runs/mqar \
    --set train.epochs=40 --set train.eval_every=500 --set train.log_every=100 >"$out/mqar.log" 2>&1 &
  local from=""
  for L in 256 1024 4096; do
    timeout "$secs" $ssm --threads 2 train configs/selective-copy-mamba.toml --device cuda \
      --out $runs/sc$L $from --set data.seq_len=$L --set train.max_steps=100000 \
      --set data.train_size=800000 --set train.eval_every=500 --set train.log_every=100 \
      >"$out/sc$L.log" 2>&1
    from="--set train.init_from=$runs/sc$L"
    grep -E "validation|error" "$out/sc$L.log" | tail -3
  done
  wait
  grep -E "validation|error" "$out/mqar.log" | tail -3
  $ssm eval $runs/sc4096 --device cuda --json 2>&1 | tail -1 | tee "$out/sc4096_test.txt"
  $ssm eval $runs/mqar --device cuda --json 2>&1 | tail -1 | tee "$out/mqar_test.txt"
}

tests() {
  unit_tests
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
  tests-only) unit_tests ;;
  train) train_tasks "${2:-300}" ;;
  curriculum) train_curriculum "${2:-90}" ;;
esac
