"""PyTorch eager baseline for SSD (Mamba-2) on the GPU, for docs/PERFORMANCE.md (CUDA section).

    python3 bench/torch_ssd_gpu.py [--lengths 2048,4096,8192,16384] [--reps 10] [--check]

The chunked algorithm written from the equations (ssm/kernels/ssd.h), chunk Q = 128, f32 without
TF32 (torch's default for matmul), at (B = 8, H = 32, P = 64, N = 128, G = 1) with D and an
initial state; forward alone under no_grad, then forward + backward through autograd:
  Λ = cumsum of dt·A in each chunk; L_ij = exp(Λ_i − Λ_j) for j ≤ i (else 0)
  Y_diag = (C Bᵀ ∘ L) (dt ∘ X);  St_c = Σ_j exp(Λ_last − Λ_j) dt_j x_j B_jᵀ
  S_in(c+1) = exp(Λ_last,c) S_in(c) + St_c (a scan over chunks, S_in(0) = initial state)
  Y_off = exp(Λ_i) S_in C_i;  y = Y_diag + Y_off + D x
--check compares it with a plain step-by-step loop on small sizes (float64, CPU).
"""
import argparse
import statistics

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


def ssd_chunked(x, dt, A, B, C, D, s0, Q=128):
    b, l, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    pad = (-l) % Q
    if pad:  # zero dt past the end: no decay, no input
        x, dt = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, pad)), torch.nn.functional.pad(dt, (0, 0, 0, pad))
        B, C = torch.nn.functional.pad(B, (0, 0, 0, 0, 0, pad)), torch.nn.functional.pad(C, (0, 0, 0, 0, 0, pad))
    c = x.shape[1] // Q
    hg = h // g
    xd = (x * dt[..., None]).view(b, c, Q, h, p).permute(0, 1, 3, 2, 4)  # (b, c, h, Q, p)
    lam = (dt * A).view(b, c, Q, h).permute(0, 1, 3, 2).cumsum(-1)  # (b, c, h, Q)
    Bc = B.view(b, c, Q, g, n).permute(0, 1, 3, 2, 4)  # (b, c, g, Q, n)
    Cc = C.view(b, c, Q, g, n).permute(0, 1, 3, 2, 4)
    diff = lam[..., :, None] - lam[..., None, :]
    mask = torch.ones(Q, Q, dtype=torch.bool, device=x.device).tril()
    Lm = torch.exp(diff.masked_fill(~mask, float("-inf")))  # (b, c, h, Q, Q)
    CB = (Cc @ Bc.transpose(-1, -2)).repeat_interleave(hg, dim=2)  # (b, c, h, Q, Q)
    y_diag = (CB * Lm) @ xd  # (b, c, h, Q, p)
    Bh = Bc.repeat_interleave(hg, dim=2)
    Ch = Cc.repeat_interleave(hg, dim=2)
    decay = torch.exp(lam[..., -1:] - lam)  # (b, c, h, Q)
    st = (xd * decay[..., None]).transpose(-1, -2) @ Bh  # (b, c, h, p, n)
    chunk_decay = torch.exp(lam[..., -1])  # (b, c, h)
    s_in = [s0]
    for k in range(c):
        s_in.append(chunk_decay[:, k, :, None, None] * s_in[-1] + st[:, k])
    final = s_in[-1]
    S = torch.stack(s_in[:-1], dim=1)  # (b, c, h, p, n)
    y_off = (Ch @ S.transpose(-1, -2)) * torch.exp(lam)[..., None]  # (b, c, h, Q, p)
    y = (y_diag + y_off).permute(0, 1, 3, 2, 4).reshape(b, c * Q, h, p)[:, :l]
    return y + D[:, None] * x[:, :l], final


def ssd_loop(x, dt, A, B, C, D, s0):
    b, l, h, p = x.shape
    hg = h // B.shape[2]
    S, ys = s0.clone(), []
    for t in range(l):
        Bt, Ct = B[:, t].repeat_interleave(hg, 1), C[:, t].repeat_interleave(hg, 1)  # (b, h, n)
        S = torch.exp(dt[:, t] * A)[..., None, None] * S + (dt[:, t, :, None] * x[:, t])[..., None] * Bt[:, :, None]
        ys.append((S * Ct[:, :, None]).sum(-1) + D[:, None] * x[:, t])
    return torch.stack(ys, 1), S


def inputs(b, l, h, p, n, g, device, dtype, seed):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=dtype)
    x, B, C = r(b, l, h, p), r(b, l, g, n), r(b, l, g, n)
    dt = 0.005 + 0.095 * torch.sigmoid(r(b, l, h))
    A = -1 - 7 * torch.sigmoid(r(h))
    D, s0 = r(h), r(b, h, p, n)
    return [t.to(device).requires_grad_() for t in (x, dt, A, B, C, D, s0)]


def check():
    for (b, l, h, p, n, g, Q) in [(2, 37, 4, 5, 7, 2, 16), (1, 64, 2, 3, 4, 1, 16)]:
        ins = inputs(b, l, h, p, n, g, "cpu", torch.float64, 5)
        y1, f1 = ssd_chunked(*ins, Q=Q)
        y2, f2 = ssd_loop(*ins)
        err = max(((y1 - y2).norm() / y2.norm()).item(), ((f1 - f2).norm() / f2.norm()).item())
        print(f"check L={l} Q={Q}: rel err {err:.2e}")
        assert err < 1e-12


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="2048,4096,8192,16384")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    if args.check:
        check()
        return
    b, h, p, n, g = 8, 32, 64, 128, 1
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}, TF32 matmul {torch.backends.cuda.matmul.allow_tf32}")
    print("| op | B | H | P | N | L | fwd ms | bwd ms | fwd+bwd ms |\n|---|---|---|---|---|---|---|---|---|")
    for l in [int(v) for v in args.lengths.split(",")]:
        ins = inputs(b, l, h, p, n, g, "cuda", torch.float32, l)
        dy = torch.randn(b, l, h, p, device="cuda")
        dfin = torch.randn(b, h, p, n, device="cuda")

        def fwd():
            with torch.no_grad():
                ssd_chunked(*ins)

        def fwd_bwd():
            y, f = ssd_chunked(*ins)
            torch.autograd.backward([y, f], [dy, dfin])

        try:
            f_ms = timed_ms(fwd, args.reps)
            t_ms = timed_ms(fwd_bwd, args.reps)
            print(f"| torch eager chunked SSD f32 | {b} | {h} | {p} | {n} | {l} | {f_ms:.3f} | {t_ms - f_ms:.3f} | {t_ms:.3f} |", flush=True)
        except torch.cuda.OutOfMemoryError:
            print(f"| torch eager chunked SSD f32 | {b} | {h} | {p} | {n} | {l} | OOM | | |", flush=True)
        del ins, dy, dfin
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
