"""PyTorch reference for ops/s4d_kernel: K = 2·Re Σ_n C·B̄·Ā^l with torch complex autograd.

inputs: log_dt (H), A_re_log, A_im, B_re, B_im, C_re, C_im (H, N/2), w (H, L) the weights of
the scalar loss Σ w ⊙ K, L (1), bilinear (1: 0 = ZOH, 1 = bilinear).
outputs: K (H, L) and grad_<name> for every parameter.
"""
import torch

NAMES = ["log_dt", "A_re_log", "A_im", "B_re", "B_im", "C_re", "C_im"]


def run(inputs):
    L = int(inputs["L"].item())
    bilinear = bool(inputs["bilinear"].item())
    p = {k: inputs[k].clone().requires_grad_(True) for k in NAMES}
    dt = torch.exp(p["log_dt"])[:, None]
    A = torch.complex(-torch.exp(p["A_re_log"]), p["A_im"])
    B = torch.complex(p["B_re"], p["B_im"])
    C = torch.complex(p["C_re"], p["C_im"])
    dtA = dt * A
    steps = torch.arange(L, dtype=torch.float64)
    if bilinear:
        A_bar = (1 + dtA / 2) / (1 - dtA / 2)
        B_bar = dt * B / (1 - dtA / 2)
        powers = torch.exp(torch.log(A_bar)[..., None] * steps)
    else:
        B_bar = B * (torch.exp(dtA) - 1) / A
        powers = torch.exp(dtA[..., None] * steps)
    K = 2 * torch.einsum("hn,hnl->hl", C * B_bar, powers).real
    (K * inputs["w"]).sum().backward()
    out = {"K": K}
    out.update({"grad_" + k: p[k].grad for k in NAMES})
    return out
