"""PyTorch reference for nn::S4 (DPLR): the layer written from its equations (DESIGN §5, S4) with
dense complex matrices, differentiated by torch autograd. Nothing here uses the layer's
generating function, Cauchy sums, Woodbury identity or FFTs.

Per channel h, over the full basis of N = 2·(N/2) coordinates (the kept modes, then their
conjugates):
  Λ = −exp(Lambda_re_log) + i·Lambda_im,   p_r = (P_r, conj P_r),   b = (B, conj B)
  A = diag(Λ, conj Λ) − Σ_r p_r p_r*                                (dense N×N, Q = P)
  Δ = exp(log_dt),  Ā = (I − ΔA/2)⁻¹(I + ΔA/2),  B̄ = (I − ΔA/2)⁻¹ Δ b   (bilinear)
  C̃ = (C̃, conj C̃) is the trainable row vector, C̃ = C(I − Ā^l_max), so C = C̃ (I − Ā^l_max)⁻¹
  (Ā^l_max by l_max repeated products)
  K_l = Re(C Ā^l B̄) for l = 0..L−1 (by repeated matrix–vector products; C Ā^l B̄ is real up to
  rounding, = 2·Re over the kept half)
  y_l = Σ_{j≤l} K_{l−j} u_j + D u_l                                 (direct causal sum)
  bidirectional adds Σ_{j>l} K_bwd[j−l−1] u_j with K_bwd from C̃_bwd the same way.

inputs: x (B, L, H); log_dt, D (H); Lambda_re_log, Lambda_im, B_re, B_im, C_re, C_im (H, N/2);
P_re, P_im (R, H, N/2); optional C_re_bwd, C_im_bwd (H, N/2) (present = bidirectional);
l_max (1): the kernel length C̃ refers to; w (B, L, H) the weights of the scalar loss Σ w ⊙ y.
outputs: y (B, L, H) and grad_<name> for x and every parameter.
"""
import torch

PARAMS = ["log_dt", "Lambda_re_log", "Lambda_im", "P_re", "P_im", "B_re", "B_im", "C_re", "C_im",
          "D"]
BWD = ["C_re_bwd", "C_im_bwd"]


def full(re, im):
    """The kept modes and their conjugates: (N/2) real pairs → (N) complex."""
    v = torch.complex(re, im)
    return torch.cat([v, v.conj()])


def run(inputs):
    bidirectional = "C_re_bwd" in inputs
    names = ["x"] + PARAMS + (BWD if bidirectional else [])
    p = {k: inputs[k].clone().requires_grad_(True) for k in names}
    l_max = int(inputs["l_max"].item())
    u = p["x"]  # (B, L, H)
    L, H = u.shape[1], u.shape[2]
    R = p["P_re"].shape[0]
    N = 2 * p["Lambda_re_log"].shape[1]
    assert L <= l_max
    eye = torch.eye(N, dtype=torch.complex128)

    def kernel(A_bar, B_bar, power, c_re, c_im):
        # C = C̃ (I − Ā^l_max)⁻¹  ⇔  (I − Ā^l_max)ᵀ Cᵀ = C̃ᵀ  (plain transpose: C is a row vector)
        C = torch.linalg.solve((eye - power).T, full(c_re, c_im))
        taps, v = [], B_bar
        for _ in range(L):
            # (C * v).sum(), not C @ v: complex vector·vector products (zdotu) return wrong values
            # (zeros) in Debian's torch 1.13 on this BLAS; matrix products are fine.
            taps.append((C * v).sum().real)
            v = A_bar @ v
        return torch.stack(taps)  # (L)

    def causal(K, uh):  # uh (B, L): y_l = Σ_{j≤l} K_{l−j} u_j
        y = torch.zeros_like(uh)
        for k in range(L):
            y = y + torch.nn.functional.pad(K[k] * uh[:, : L - k], (k, 0))
        return y

    def future(K, uh):  # y_l = Σ_{j>l} K[j−l−1] u_j
        y = torch.zeros_like(uh)
        for k in range(L - 1):
            y = y + torch.nn.functional.pad(K[k] * uh[:, k + 1 :], (0, k + 1))
        return y

    outs = []
    for h in range(H):
        lam = torch.complex(-torch.exp(p["Lambda_re_log"][h]), p["Lambda_im"][h])
        A = torch.diag(torch.cat([lam, lam.conj()]))
        for r in range(R):
            pr = full(p["P_re"][r, h], p["P_im"][r, h])
            A = A - torch.outer(pr, pr.conj())
        dt = torch.exp(p["log_dt"][h])
        minus, plus = eye - dt / 2 * A, eye + dt / 2 * A
        A_bar = torch.linalg.solve(minus, plus)
        B_bar = torch.linalg.solve(minus, dt * full(p["B_re"][h], p["B_im"][h]))
        power = eye
        for _ in range(l_max):
            power = power @ A_bar
        uh = u[:, :, h]
        yh = causal(kernel(A_bar, B_bar, power, p["C_re"][h], p["C_im"][h]), uh)
        if bidirectional:
            yh = yh + future(kernel(A_bar, B_bar, power, p["C_re_bwd"][h], p["C_im_bwd"][h]), uh)
        outs.append(yh + p["D"][h] * uh)
    y = torch.stack(outs, dim=2)  # (B, L, H)

    (y * inputs["w"]).sum().backward()
    out = {"y": y}
    out.update({"grad_" + k: p[k].grad for k in names})
    return out
