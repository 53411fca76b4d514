#!/usr/bin/python3
"""Selective scan and SSD (forward + backward) in PyTorch, the torch side of `ssm bench scan`.

- selective_scan: Mamba-1's scan as the usual PyTorch reference computes it (DESIGN §5): the
  discretised Ā = exp(Δ A) and B̄u = Δ B u materialised as (B, D, L, N), then a Python loop over
  L of (B, D, N) tensor ops h = Ā_l h + B̄u_l, y_l = h·C_l; out = (y + D u)·silu(z); autograd
  (per-step views through unbind, so the backward stays linear in L).
- ssd: Mamba-2's chunked SSD written from the equations (chunk Q): intra-chunk quadratic form
  (C Bᵀ ∘ L) X, chunk end states, a loop passing states between chunks, and the state-to-output
  term; y + D x; autograd.

Usage: /usr/bin/python3 bench/torch_scan.py --op selective_scan|ssd [--threads N] [--runs R]
           [--warmup W] [--batch B] [--length L] [--d-inner D] [--scan-state N]
           [--heads H] [--head-dim P] [--ssd-state N] [--groups G] [--chunk Q] [--check]
           [--device cpu|cuda]
--device cuda runs on the GPU (each timed run ends with torch.cuda.synchronize()); there the
selective scan is the chunked eager algorithm of bench/torch_scan_gpu.py (the same algorithm as
ssm's CUDA kernel; the step-by-step loop above is launch-bound on a GPU).
Prints one JSON object on stdout ({"torch_version", "op", "threads", "times_ms", "mean_ms",
"std_ms", "runs"}); progress on stderr. --check compares both ops against a plain sequential
float64 recurrence at the given sizes and prints the relative errors instead. Exits 3 with
{"error": ...} on stdout when torch cannot be imported.
"""
import argparse
import json
import os
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # the caller prints "torch: unavailable" with this reason
    print(json.dumps({"error": f"cannot import torch: {e}"}))
    sys.exit(3)


def selective_scan_ref(u, delta, A, B, C, D, z, delta_bias):
    """u, delta, z (b, d, l); A (d, n); B, C (b, g, n, l); D, delta_bias (d)."""
    delta = F.softplus(delta + delta_bias[:, None])
    b, d, l = u.shape
    g, n = B.shape[1], A.shape[1]
    # Channels split into g groups of d/g sharing B and C (broadcast, never copied per channel).
    dA = torch.exp(delta[..., None] * A[:, None, :]).view(b, g, d // g, l, n)
    dBu = (delta * u).view(b, g, d // g, l, 1) * B.transpose(2, 3)[:, :, None]
    # unbind: one view per step whose backward is a single stack (indexing dA[..., i, :] in
    # the loop would make autograd build a full (b, d, l, n) zero gradient for every step).
    dA_steps, dBu_steps = dA.unbind(3), dBu.unbind(3)
    C_steps = C.unbind(3)
    h = u.new_zeros(b, g, d // g, n)
    ys = []
    for i in range(l):
        h = dA_steps[i] * h + dBu_steps[i]
        ys.append((h * C_steps[i][:, :, None]).sum(-1).reshape(b, d))
    y = torch.stack(ys, dim=2) + D[:, None] * u
    return y * F.silu(z)


def ssd_chunked(x, dt, A, B, C, D, Q):
    """x (b, l, h, p); dt (b, l, h); A (h); B, C (b, l, g, n); D (h). Returns y (b, l, h, p)."""
    b, l, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    c, k = l // Q, h // g
    X = (x * dt[..., None]).reshape(b, c, Q, g, k, p)
    a = (dt * A).reshape(b, c, Q, g, k).permute(0, 3, 4, 1, 2)  # (b, g, k, c, Q)
    Bq, Cq = B.reshape(b, c, Q, g, n), C.reshape(b, c, Q, g, n)
    a_cum = torch.cumsum(a, dim=-1)
    # 1. Within chunks: L_ij = exp(Σ_{j<m≤i} a_m) for i ≥ j, else 0.
    causal = torch.ones(Q, Q, dtype=torch.bool).tril()
    seg = (a_cum[..., :, None] - a_cum[..., None, :]).masked_fill(~causal, float("-inf"))
    CB = torch.einsum("bcign,bcjgn->bgcij", Cq, Bq)  # once per group, shared by its heads
    scores = CB[:, :, None] * torch.exp(seg)  # (b, g, k, c, i, j)
    y_diag = torch.einsum("bgkcij,bcjgkp->bcigkp", scores, X)
    # 2. Each chunk's end state from its own inputs.
    decay_to_end = torch.exp(a_cum[..., -1:] - a_cum)  # (b, g, k, c, Q)
    Xd = X * decay_to_end.permute(0, 3, 4, 1, 2)[..., None]
    states = torch.einsum("bcjgn,bcjgkp->bcgkpn", Bq, Xd)
    # 3. States passed between chunks (a short sequential scan over c).
    chunk_decay = torch.exp(a_cum[..., -1])  # (b, g, k, c)
    s = x.new_zeros(b, g, k, p, n)
    s_in = []
    for i in range(c):
        s_in.append(s)
        s = chunk_decay[..., i, None, None] * s + states[:, i]
    s_in = torch.stack(s_in, dim=1)  # (b, c, g, k, p, n)
    # 4. The incoming state's contribution inside each chunk.
    y_off = torch.einsum("bcign,bcgkpn->bcigkp", Cq, s_in)
    y_off = y_off * torch.exp(a_cum).permute(0, 3, 4, 1, 2)[..., None]
    y = (y_diag + y_off).reshape(b, l, h, p)
    return y + D[:, None] * x


def sequential_reference(op, t):
    """Plain float64 recurrences (for --check)."""
    t = {k: v.detach().double() for k, v in t.items()}
    if op == "selective_scan":
        u, delta, A, B, C, D, z = (t[k] for k in ("u", "delta", "A", "B", "C", "D", "z"))
        delta = F.softplus(delta + t["delta_bias"][:, None])
        b, d, l = u.shape
        rep = d // B.shape[1]
        h = torch.zeros(b, d, A.shape[1], dtype=torch.float64)
        y = torch.zeros(b, d, l, dtype=torch.float64)
        for i in range(l):
            Bi = B[:, :, :, i].repeat_interleave(rep, 1)
            Ci = C[:, :, :, i].repeat_interleave(rep, 1)
            h = torch.exp(delta[:, :, i, None] * A) * h + (delta[:, :, i] * u[:, :, i])[..., None] * Bi
            y[:, :, i] = (h * Ci).sum(-1)
        return (y + D[:, None] * u) * F.silu(z)
    x, dt, A, B, C, D = (t[k] for k in ("x", "dt", "A", "B", "C", "D"))
    b, l, h, p = x.shape
    rep = h // B.shape[2]
    s = torch.zeros(b, h, p, B.shape[3], dtype=torch.float64)
    y = torch.zeros_like(x)
    for i in range(l):
        Bi, Ci = B[:, i].repeat_interleave(rep, 1), C[:, i].repeat_interleave(rep, 1)  # (b, h, n)
        s = torch.exp(dt[:, i] * A)[..., None, None] * s + (dt[:, i, :, None] * x[:, i])[..., None] * Bi[:, :, None]
        y[:, i] = (s * Ci[:, :, None]).sum(-1)
    return y + D[:, None] * x


def make_inputs(op, a, g):
    def randn(*shape):
        return torch.randn(*shape, generator=g)

    if op == "selective_scan":
        b, d, l, n, G = a.batch, a.d_inner, a.length, a.scan_state, a.groups
        A = -torch.arange(1, n + 1, dtype=torch.float32).repeat(d, 1)  # S4D-Real
        return {"u": randn(b, d, l), "delta": randn(b, d, l) * 0.5 - 1, "A": A,
                "B": randn(b, G, n, l), "C": randn(b, G, n, l), "D": randn(d), "z": randn(b, d, l),
                "delta_bias": randn(d) * 0.1}
    b, l, h, p, n, G = a.batch, a.length, a.heads, a.head_dim, a.ssd_state, a.groups
    return {"x": randn(b, l, h, p), "dt": F.softplus(randn(b, l, h) - 2),
            "A": -torch.rand(h, generator=g) * 15 - 1, "B": randn(b, l, G, n),
            "C": randn(b, l, G, n), "D": randn(h)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--op", choices=["selective_scan", "ssd"], required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--d-inner", type=int, default=1536)
    parser.add_argument("--scan-state", type=int, default=16)
    parser.add_argument("--heads", type=int, default=24)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--ssd-state", type=int, default=128)
    parser.add_argument("--groups", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=128)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    a = parser.parse_args()
    torch.set_num_threads(a.threads)
    if a.op == "ssd" and a.length % a.chunk:
        parser.error(f"--length {a.length} must be a multiple of --chunk {a.chunk}")
    g = torch.Generator().manual_seed(0)
    inputs = {k: v.to(a.device).requires_grad_() for k, v in make_inputs(a.op, a, g).items()}
    scan = selective_scan_ref
    if a.device == "cuda":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from torch_scan_gpu import selective_scan_chunked as scan
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    if a.op == "selective_scan":
        def fn():
            return scan(*(inputs[k] for k in
                                        ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")))
    else:
        def fn():
            return ssd_chunked(*(inputs[k] for k in ("x", "dt", "A", "B", "C", "D")), a.chunk)

    if a.check:
        ref = sequential_reference(a.op, inputs)
        out = fn().detach().double()
        print(json.dumps({"op": a.op, "rel_error": float((out - ref).norm() / ref.norm())}))
        return
    grad_out = torch.randn(fn().shape, generator=g).to(a.device)

    def step():
        for t in inputs.values():
            t.grad = None  # cleared each iteration, as an optimiser loop does
        fn().backward(grad_out)
        sync()

    for _ in range(a.warmup):
        step()
    times = []
    for i in range(a.runs):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
        print(f"torch {a.op} run {i + 1}/{a.runs}: {times[-1]:.1f} ms", file=sys.stderr)
    print(json.dumps({
        "torch_version": torch.__version__, "op": a.op, "threads": a.threads, "chunk": a.chunk,
        "device": torch.cuda.get_device_name() if a.device == "cuda" else "cpu",
        "times_ms": times, "mean_ms": statistics.mean(times),
        "std_ms": statistics.stdev(times) if len(times) > 1 else 0.0, "runs": len(times)}))


if __name__ == "__main__":
    main()
