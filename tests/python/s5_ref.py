"""PyTorch reference for nn/S5: a torch complex recurrence, run one step at a time.

inputs: u (B, L, H); log_dt, Lambda_re_log, Lambda_im (P); B_re, B_im (P, H); C_re, C_im (H, P);
D (H); C_re_bwd, C_im_bwd (H, P) when bidirectional; w (B, L, H) the weights of the scalar loss
sum(w * y); bidirectional (1: 0 or 1).
outputs: y (B, L, H), grad_u and grad_<name> for every parameter.
"""
import torch

NAMES = ["log_dt", "Lambda_re_log", "Lambda_im", "B_re", "B_im", "C_re", "C_im", "D"]


def run(inputs):
    bidirectional = bool(inputs["bidirectional"].item())
    names = NAMES + (["C_re_bwd", "C_im_bwd"] if bidirectional else [])
    p = {k: inputs[k].clone().requires_grad_(True) for k in names}
    u = inputs["u"].clone().requires_grad_(True)
    Bsz, L, H = u.shape

    dt = torch.exp(p["log_dt"])
    Lam = torch.complex(-torch.exp(p["Lambda_re_log"]), p["Lambda_im"])
    Lam_bar = torch.exp(dt * Lam)
    B_bar = ((Lam_bar - 1) / Lam)[:, None] * torch.complex(p["B_re"], p["B_im"])
    C = torch.complex(p["C_re"], p["C_im"])
    uc = u.to(torch.complex128)

    def scan(order, C_out):
        x = torch.zeros(Bsz, Lam.shape[0], dtype=torch.complex128)
        ys = [None] * L
        for k in order:
            x = Lam_bar * x + uc[:, k, :] @ B_bar.T
            ys[k] = 2 * (x @ C_out.T).real
        return torch.stack(ys, dim=1)

    y = scan(range(L), C) + u * p["D"]
    if bidirectional:
        y = y + scan(reversed(range(L)), torch.complex(p["C_re_bwd"], p["C_im_bwd"]))
    (y * inputs["w"]).sum().backward()
    out = {"y": y, "grad_u": u.grad}
    out.update({"grad_" + k: p[k].grad for k in names})
    return out
