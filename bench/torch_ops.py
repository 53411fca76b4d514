#!/usr/bin/python3
"""The computations of bench/bench_ops.cpp in PyTorch (float32, same sizes), for comparison.

Usage: /usr/bin/python3 bench/torch_ops.py [--threads N] [--runs R] [--only OP] [--json OUT]
Prints `op | ms (mean ± std) | median` over R timed runs after warmup; --json also writes
{op: {"mean_ms", "std_ms", "median_ms", "runs"}} for bench/run_ops_bench.sh.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

BATCH, LENGTH, CHANNELS, CONV_WIDTH = 16, 1024, 256, 4
TOKENS = BATCH * LENGTH


def rms_norm(x, weight, eps=1e-5):
    # PyTorch 1.13 has no fused RMSNorm; this is the usual composition (as in HF Mamba).
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def causal_conv1d(x, weight, bias):
    # Depthwise (groups = D), causal through left padding by k - 1.
    return F.conv1d(F.pad(x, (CONV_WIDTH - 1, 0)), weight, bias, groups=CHANNELS)


def fft_conv(u, k):
    n = 2 * LENGTH
    return torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(k, n=n), n=n)[..., :LENGTH]


def make_cases():
    """op name -> (inputs that would need grad, forward function), as in bench_ops.cpp."""
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g)

    x2d, w = randn(TOKENS, CHANNELS), randn(CHANNELS, CHANNELS)
    x3d, gamma, beta = randn(BATCH, LENGTH, CHANNELS), randn(CHANNELS), randn(CHANNELS)
    xc, wc, bc = randn(BATCH, CHANNELS, LENGTH), randn(CHANNELS, 1, CONV_WIDTH), randn(CHANNELS)
    u, k = randn(BATCH, CHANNELS, LENGTH), randn(CHANNELS, LENGTH)
    return {
        "linear": ([x2d, w], lambda a, b: F.linear(a, b)),
        "layer_norm": ([x3d, gamma, beta], lambda a, b, c: F.layer_norm(a, (CHANNELS,), b, c)),
        "rms_norm": ([x3d, gamma], rms_norm),
        "causal_conv1d": ([xc, wc, bc], causal_conv1d),
        "fft_conv": ([u, k], fft_conv),
    }


def time_case(inputs, fn, backward, warmup, runs):
    leaves = [t.detach().clone().requires_grad_(backward) for t in inputs]
    grad_out = torch.randn_like(fn(*leaves).detach()) if backward else None

    def step():
        for t in leaves:
            t.grad = None  # as an optimiser loop would, so grads are not accumulated
        if backward:
            fn(*leaves).backward(grad_out)
        else:
            with torch.no_grad():
                fn(*leaves)

    for _ in range(warmup):
        step()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--only", help="run just this op (linear, layer_norm, rms_norm, ...)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    assert args.runs >= 5, "need at least 5 timed runs"
    torch.set_num_threads(args.threads)

    results = {}
    print(f"torch {torch.__version__} | threads {args.threads} | runs {args.runs}")
    print(f"| {'op':<24} | {'ms (mean ± std)':>18} | {'median ms':>9} | {'tokens/s':>10} |")
    print(f"|{'-' * 26}|{'-' * 20}|{'-' * 11}|{'-' * 12}|")
    cases = make_cases()
    if args.only:
        cases = {args.only: cases[args.only]}
    for name, (inputs, fn) in cases.items():
        for backward in (False, True):
            op = f"{name} {'fwd+bwd' if backward else 'fwd'}"
            t = time_case(inputs, fn, backward, args.warmup, args.runs)
            mean, std, median = statistics.mean(t), statistics.stdev(t), statistics.median(t)
            results[op] = {"mean_ms": mean, "std_ms": std, "median_ms": median, "runs": len(t)}
            print(f"| {op:<24} | {mean:9.2f} ± {std:6.2f} | {median:9.2f} | "
                  f"{TOKENS / (median / 1e3):10.3g} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
