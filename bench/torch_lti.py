#!/usr/bin/python3
"""S4D and S4 layers (forward + backward) in PyTorch, the torch side of `ssm bench lti`.

Written from the equations of DESIGN §5 the way the reference implementations compute them
without custom kernels: the S4D kernel as a materialised (H, N/2, L) complex Vandermonde
product, the S4 kernel as naive Cauchy sums at the roots of unity over the N modes (kept modes
and their conjugates: the (H, N, L/2+1) complex Cauchy matrix is materialised once and shared
by the four sums), the rank-1 Woodbury correction and an irfft; then the FFT convolution y = irfft(rfft(u, 2L)·rfft(K, 2L))[:L] + D·u.

Usage: /usr/bin/python3 bench/torch_lti.py --layer s4d|s4 [--threads N] [--runs R]
           [--warmup W] [--batch B] [--channels H] [--state N] [--length L]
Prints one JSON object on stdout: {"torch_version", "layer", "threads", "times_ms": [...],
"mean_ms", "std_ms", "runs"}; progress goes to stderr. Exits 3 with {"error": ...} on stdout
when torch cannot be imported.
"""
import argparse
import json
import math
import statistics
import sys
import time

try:
    import torch
except ImportError as e:  # the caller prints "torch: unavailable" with this reason
    print(json.dumps({"error": f"cannot import torch: {e}"}))
    sys.exit(3)


def fft_conv(u, k):
    """Causal convolution along the last axis: u (B, H, L), k (H, L)."""
    L = u.shape[-1]
    n = 2 * L
    return torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(k, n=n), n=n)[..., :L]


def hippo_legs_dplr(N):
    """HiPPO-LegS as Λ (N/2 kept eigenvalues), P and B in the eigenbasis (rank 1), float64."""
    n = torch.arange(N, dtype=torch.float64)
    q = torch.sqrt(2 * n + 1)
    A = -torch.tril(q[:, None] * q[None, :], diagonal=-1) - torch.diag(n + 1)
    P = torch.sqrt(n + 0.5)
    B = q.clone()
    S = A + P[:, None] * P[None, :]  # normal: skew-symmetric − ½ I
    skew = S + 0.5 * torch.eye(N, dtype=torch.float64)
    # −i·skew is Hermitian: its eigenvectors diagonalise S with Λ = −½ + i·eigenvalue.
    evals, V = torch.linalg.eigh(-1j * skew.to(torch.complex128))
    lam = torch.complex(torch.full_like(evals, -0.5), evals)
    keep = lam.imag < 0
    Vh = V.conj().T
    return lam[keep], (Vh @ P.to(V.dtype))[keep], (Vh @ B.to(V.dtype))[keep]


class S4D(torch.nn.Module):
    """y = K * u + D·u with the ZOH Vandermonde kernel of N/2 complex modes per channel."""

    def __init__(self, H, N, g):
        super().__init__()
        M = N // 2
        lam, _, _ = hippo_legs_dplr(N)  # S4D-LegS: the diagonal part of the DPLR form
        lo, hi = math.log(1e-3), math.log(1e-1)
        self.log_dt = torch.nn.Parameter(torch.rand(H, generator=g) * (hi - lo) + lo)
        self.A_re_log = torch.nn.Parameter(torch.log(-lam.real).float().repeat(H, 1))
        self.A_im = torch.nn.Parameter(lam.imag.float().repeat(H, 1))
        self.B_re = torch.nn.Parameter(torch.ones(H, M))
        self.B_im = torch.nn.Parameter(torch.zeros(H, M))
        self.C_re = torch.nn.Parameter(torch.randn(H, M, generator=g) * math.sqrt(0.5))
        self.C_im = torch.nn.Parameter(torch.randn(H, M, generator=g) * math.sqrt(0.5))
        self.D = torch.nn.Parameter(torch.randn(H, generator=g))

    def kernel(self, L):
        dt = torch.exp(self.log_dt)
        A = torch.complex(-torch.exp(self.A_re_log), self.A_im)
        dtA = A * dt[:, None]  # (H, M)
        coef = torch.complex(self.C_re, self.C_im) * torch.complex(self.B_re, self.B_im)
        coef = coef * (torch.exp(dtA) - 1) / A
        vandermonde = torch.exp(dtA[:, :, None] * torch.arange(L, dtype=torch.float32))
        return 2 * torch.einsum("hm,hml->hl", coef, vandermonde).real

    def forward(self, x):  # x (B, L, H)
        u = x.transpose(1, 2)
        y = fft_conv(u, self.kernel(u.shape[-1])) + self.D[:, None] * u
        return y.transpose(1, 2)


class S4(torch.nn.Module):
    """y = K * u + D·u with the DPLR kernel (rank 1, bilinear) from C̃ via Cauchy + Woodbury."""

    def __init__(self, H, N, g):
        super().__init__()
        lam, P, B = hippo_legs_dplr(N)
        lo, hi = math.log(1e-3), math.log(1e-1)
        self.log_dt = torch.nn.Parameter(torch.rand(H, generator=g) * (hi - lo) + lo)
        self.Lambda_re_log = torch.nn.Parameter(torch.log(-lam.real).float().repeat(H, 1))
        self.Lambda_im = torch.nn.Parameter(lam.imag.float().repeat(H, 1))
        self.P_re = torch.nn.Parameter(P.real.float().repeat(H, 1))
        self.P_im = torch.nn.Parameter(P.imag.float().repeat(H, 1))
        self.B_re = torch.nn.Parameter(B.real.float().repeat(H, 1))
        self.B_im = torch.nn.Parameter(B.imag.float().repeat(H, 1))
        # C̃ stands for C(I − Ā^L); a random C̃ costs the same to evaluate.
        self.C_re = torch.nn.Parameter(torch.randn(H, N // 2, generator=g) * math.sqrt(0.5))
        self.C_im = torch.nn.Parameter(torch.randn(H, N // 2, generator=g) * math.sqrt(0.5))
        self.D = torch.nn.Parameter(torch.randn(H, generator=g))

    def kernel(self, L):
        dt = torch.exp(self.log_dt)  # (H)
        lam = torch.complex(-torch.exp(self.Lambda_re_log), self.Lambda_im)
        P = torch.complex(self.P_re, self.P_im)
        B = torch.complex(self.B_re, self.B_im)
        C = torch.complex(self.C_re, self.C_im)
        # Roots of unity for the rfft half, z_k = 2(1 − ω_k)/(1 + ω_k) (Δ moved into Λ).
        k = torch.arange(L // 2 + 1, dtype=torch.float64)
        omega = torch.exp(-2j * math.pi * k / L).to(torch.complex64)
        z = 2 * (1 - omega) / (1 + omega)
        w = lam * dt[:, None]  # ΔΛ (H, M)
        # v[i, j] = left_i · right_j for left = (C̃, P*), right = (B, P): (2, 2, H, M).
        left = torch.stack([C, P.conj()])
        right = torch.stack([B, P])
        v = left[:, None] * right[None, :]
        # Conjugate pairs as explicit modes; the Cauchy matrix 1/(z_k − w_n) (H, N, L/2+1) is
        # materialised once and shared by the four sums r[i, j] = Σ_n v[i, j, n]/(z_k − w_n).
        v = torch.cat([v, v.conj()], dim=-1)
        w = torch.cat([w, w.conj()], dim=-1)
        cauchy = 1 / (z - w[..., None])
        r = torch.einsum("ijhn,hnk->ijhk", v, cauchy) * dt[:, None]
        k_f = r[0, 0] - r[0, 1] * r[1, 0] / (1 + r[1, 1])  # Woodbury, rank 1
        k_f = k_f * 2 / (1 + omega)
        return torch.fft.irfft(k_f, n=L)

    def forward(self, x):  # x (B, L, H)
        u = x.transpose(1, 2)
        y = fft_conv(u, self.kernel(u.shape[-1])) + self.D[:, None] * u
        return y.transpose(1, 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", choices=["s4d", "s4"], required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--state", type=int, default=64)
    parser.add_argument("--length", type=int, default=1024)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    layer = (S4D if args.layer == "s4d" else S4)(args.channels, args.state, g)
    x = torch.randn(args.batch, args.length, args.channels, generator=g).requires_grad_()
    grad_out = torch.randn(args.batch, args.length, args.channels, generator=g)
    params = list(layer.parameters())

    def step():
        for p in params + [x]:
            p.grad = None  # cleared each iteration, as an optimiser loop does
        layer(x).backward(grad_out)

    for _ in range(args.warmup):
        step()
    times = []
    for i in range(args.runs):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
        print(f"torch {args.layer} run {i + 1}/{args.runs}: {times[-1]:.2f} ms", file=sys.stderr)
    print(json.dumps({
        "torch_version": torch.__version__, "layer": args.layer, "threads": args.threads,
        "times_ms": times, "mean_ms": statistics.mean(times),
        "std_ms": statistics.stdev(times) if len(times) > 1 else 0.0, "runs": len(times)}))


if __name__ == "__main__":
    main()
