#!/usr/bin/env bash
# Runs the CPU op microbenchmarks of ssm (bench/bench_ops.cpp) and the same computations in
# PyTorch (bench/torch_ops.py) with one thread count, and prints a llama-bench style table:
#   | op | ssm ms | torch ms | speedup |   (mean ± std over RUNS runs; speedup = torch / ssm)
#
# Usage: bench/run_ops_bench.sh [THREADS=2] [RUNS=10]
#   BUILD_DIR  build directory holding bench/ssm_bench_ops (default: build/release);
#              configure it with -DSSM_BUILD_BENCH=ON and build target ssm_bench_ops first.
#   PYTHON     interpreter with torch (default: /usr/bin/python3)
#   OPS        ops to run (default: "linear layer_norm rms_norm causal_conv1d fft_conv")
set -euo pipefail

threads=${1:-2}
runs=${2:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build/release}
python=${PYTHON:-/usr/bin/python3}
ops=${OPS:-linear layer_norm rms_norm causal_conv1d fft_conv}
bench_bin=$build_dir/bench/ssm_bench_ops
[[ -x $bench_bin ]] || { echo "run_ops_bench.sh: $bench_bin not found (build target ssm_bench_ops)" >&2; exit 1; }
(( runs >= 5 )) || { echo "run_ops_bench.sh: RUNS must be at least 5, got $runs" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Op by op, ssm then torch, so that both sides of a row see the same machine load.
for op in $ops; do
  SSM_NUM_THREADS=$threads "$bench_bin" --benchmark_filter="^BM_${op}/" \
    --benchmark_repetitions="$runs" --benchmark_report_aggregates_only=true \
    --benchmark_format=json --benchmark_out="$work/ssm_$op.json" \
    --benchmark_out_format=json >/dev/null
  # Debian's torch runs GEMMs on OpenBLAS's own thread pool, which torch.set_num_threads
  # does not size: without this a "1 thread" torch linear uses every core.
  OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads "$python" "$root/bench/torch_ops.py" \
    --threads "$threads" --runs "$runs" --only "$op" --json "$work/torch_$op.json" >/dev/null
done

model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
"$python" - "$work" "$threads" "$runs" "$model" "$ops" <<'PY'
import json
import os
import sys

work, threads, runs, model, ops = sys.argv[1:6]
ssm, torch = {}, {}
benchmarks = []
for name in ops.split():
    torch.update(json.load(open(os.path.join(work, f"torch_{name}.json"))))
    benchmarks += json.load(open(os.path.join(work, f"ssm_{name}.json")))["benchmarks"]
for b in benchmarks:
    if b.get("run_type") != "aggregate":
        continue
    # run_name: BM_<op>/backward:<0|1>/real_time; times are in ms (Unit(kMillisecond)).
    name, flag = b["run_name"].split("/")[:2]
    op = f"{name[3:]} {'fwd+bwd' if flag.endswith('1') else 'fwd'}"
    ssm.setdefault(op, {})[b["aggregate_name"]] = b["real_time"]

print(f"cpu: {model} | threads: {threads} | runs: {runs} | float32, B=16 L=1024 D=256")
print()
print(f"| {'op':<22} | {'ssm ms':>16} | {'torch ms':>16} | {'speedup':>7} |")
print(f"| {'-' * 22} | {'-' * 16}:| {'-' * 16}:| {'-' * 7}:|")
for op, s in ssm.items():
    t = torch[op]
    speedup = t["mean_ms"] / s["mean"]
    print(f"| {op:<22} | {s['mean']:7.2f} ± {s['stddev']:6.2f} | "
          f"{t['mean_ms']:7.2f} ± {t['std_ms']:6.2f} | {speedup:6.2f}x |")
PY
