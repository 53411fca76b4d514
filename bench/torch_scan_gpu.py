"""PyTorch eager baselines and ceilings on the GPU, for docs/PERFORMANCE.md (CUDA section).

    python3 bench/torch_scan_gpu.py [--lengths 2048,4096,8192,16384] [--check]

Ceilings: device-to-device copy bandwidth (bytes read + written) and cuBLAS GEMM rates
(f32 without TF32, TF32, bf16) at 8192^3 on random data.

Baseline: the selective scan (Mamba-1) written in PyTorch eager with the same algorithm as the
CUDA kernel — the sequence cut into chunks, a scan inside each chunk (all chunks at once, Q
steps), the state carried across chunks (n_chunks steps), then each chunk's states corrected by
the carried state — with Q = n_chunks ~ sqrt(L), forward and backward through autograd. Eager
PyTorch must materialise (B, D, L, N) states, so the batch runs one sequence at a time to fit
in memory. --check compares it with a plain step-by-step loop on small sizes (runs on the CPU).
"""
import argparse
import math
import statistics
import time

import torch


def timed_ms(fn, reps, warmup=2):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def ceilings(reps):
    n = 1 << 29
    src = torch.randn(n, device="cuda")
    dst = torch.empty_like(src)
    ms = timed_ms(lambda: dst.copy_(src), reps)
    copy_gbs = 2 * n * 4 / (ms * 1e-3) / 1e9
    print(f"| D2D copy, torch (read + write) | {2 * n * 4 / 1e9:.2f} GB | {ms:.3f} ms | {copy_gbs:.0f} GB/s |")
    del src, dst
    m = 8192
    for name, dtype, tf32 in [("f32 GEMM (no TF32)", torch.float32, False),
                              ("f32 GEMM (TF32)", torch.float32, True),
                              ("bf16 GEMM (f32 accumulate)", torch.bfloat16, False)]:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(m, m, device="cuda", dtype=dtype)
        b = torch.randn(m, m, device="cuda", dtype=dtype)
        ms = timed_ms(lambda: a @ b, reps)
        print(f"| {name} {m}^3, cuBLAS via torch | {2 * m**3 / 1e12:.2f} TFLOP | {ms:.3f} ms | {2 * m**3 / (ms * 1e-3) / 1e12:.0f} TFLOP/s |")
    torch.backends.cuda.matmul.allow_tf32 = False
    return copy_gbs


def selective_scan_chunked(u, delta, A, B, C, D, z, delta_bias):
    """u, delta, z (b, d, l); A (d, n); B, C (b, 1, n, l). Returns out (b, d, l)."""
    b, d, l = u.shape
    n = A.shape[1]
    q = max(1, int(math.sqrt(l)))
    nc = (l + q - 1) // q
    pad = nc * q - l
    dt = torch.nn.functional.softplus(delta + delta_bias[:, None])
    if pad:
        dt = torch.nn.functional.pad(dt, (0, pad))
        uu = torch.nn.functional.pad(u, (0, pad))
        Bp = torch.nn.functional.pad(B, (0, pad))
    else:
        uu, Bp = u, B
    # (b, d, nc, q, n) decays and inputs
    a = torch.exp(dt.view(b, d, nc, q, 1) * A.view(1, d, 1, 1, n))
    x = (dt * uu).view(b, d, nc, q, 1) * Bp[:, 0].transpose(1, 2).reshape(1 if B.shape[0] == 1 else b, 1, nc, q, n)
    # 1) scan inside every chunk from a zero state (q steps, all chunks at once)
    h = torch.zeros(b, d, nc, n, device=u.device, dtype=u.dtype)
    p = torch.ones_like(h)
    hs, ps = [], []
    for k in range(q):
        h = a[:, :, :, k] * h + x[:, :, :, k]
        p = p * a[:, :, :, k]
        hs.append(h)
        ps.append(p)
    h_local = torch.stack(hs, dim=3)  # (b, d, nc, q, n)
    decay = torch.stack(ps, dim=3)    # product of decays from the chunk start
    # 2) carry the state across chunks (nc steps)
    carry = torch.zeros(b, d, n, device=u.device, dtype=u.dtype)
    starts = []
    for c in range(nc):
        starts.append(carry)
        carry = decay[:, :, c, -1] * carry + h_local[:, :, c, -1]
    h0 = torch.stack(starts, dim=2)  # (b, d, nc, n)
    # 3) correct each chunk's states by the state entering it
    hh = h_local + decay * h0[:, :, :, None, :]
    Cp = torch.nn.functional.pad(C, (0, pad)) if pad else C
    y = (hh * Cp[:, 0].transpose(1, 2).reshape(-1, 1, nc, q, n)).sum(-1).reshape(b, d, nc * q)[:, :, :l]
    y = y + D[:, None] * u
    return y * torch.nn.functional.silu(z)


def naive(u, delta, A, B, C, D, z, delta_bias):
    b, d, l = u.shape
    dt = torch.nn.functional.softplus(delta + delta_bias[:, None])
    h = torch.zeros(b, d, A.shape[1], dtype=u.dtype)
    ys = []
    for t in range(l):
        h = torch.exp(dt[:, :, t, None] * A) * h + (dt[:, :, t] * u[:, :, t])[:, :, None] * B[:, 0, None, :, t]
        ys.append((h * C[:, 0, None, :, t]).sum(-1))
    y = torch.stack(ys, dim=2) + D[:, None] * u
    return y * torch.nn.functional.silu(z)


def make(b, d, n, l, device, dtype=torch.float32, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype).to(device)
    return dict(u=r(b, d, l), delta=0.5 * r(b, d, l) - 1.0, A=-(0.3 + r(d, n).abs()),
                B=r(b, 1, n, l), C=r(b, 1, n, l), D=r(d), z=r(b, d, l), delta_bias=0.2 * r(d))


def check():
    x = make(2, 3, 5, 37, "cpu", torch.float64)
    ref, got = naive(**x), selective_scan_chunked(**x)
    err = ((ref - got).norm() / ref.norm()).item()
    print(f"chunked vs step-by-step loop, float64: rel err {err:.2e}")
    assert err < 1e-12


def bench(lengths, reps, copy_gbs):
    b, d, n = 8, 2048, 16
    print("| op | B | D | N | L | fwd+bwd ms (eager) | min bytes | GB/s | % of copy |")
    print("|---|---|---|---|---|---|---|---|---|")
    for l in lengths:
        x = make(b, d, n, l, "cuda", seed=l)
        for t in x.values():
            t.requires_grad_(True)
        dout = torch.randn(b, d, l, device="cuda")

        def step():
            for i in range(b):  # one sequence at a time (memory)
                xi = {k: (v[i:i + 1] if v.dim() >= 3 else v) for k, v in x.items()}
                out = selective_scan_chunked(**xi)
                out.backward(dout[i:i + 1])
        try:
            ms = timed_ms(step, max(1, reps // 3), warmup=1)
        except torch.cuda.OutOfMemoryError:
            print(f"| selective_scan eager | {b} | {d} | {n} | {l} | OOM | | | |")
            continue
        bdl, bgnl = b * d * l * 4, b * n * l * 4
        nbytes = (4 * bdl + 2 * bgnl) + (7 * bdl + 4 * bgnl)
        gbs = nbytes / (ms * 1e-3) / 1e9
        print(f"| selective_scan eager | {b} | {d} | {n} | {l} | {ms:.1f} | {nbytes / 1e9:.2f} GB | {gbs:.0f} | {100 * gbs / copy_gbs:.1f}% |", flush=True)
        del x, dout
        torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="2048,4096,8192,16384")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    if args.check:
        check()
        return
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    print("| ceiling | size | time | rate |\n|---|---|---|---|")
    copy_gbs = ceilings(args.reps)
    print()
    bench([int(s) for s in args.lengths.split(",")], args.reps, copy_gbs)


if __name__ == "__main__":
    main()
