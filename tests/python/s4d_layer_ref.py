"""PyTorch reference for nn::S4D: the layer written from its equations (DESIGN §5, S4D) as a
complex recurrence, differentiated by torch autograd.

  Δ = exp(log_dt), A = −exp(A_re_log) + i·A_im, B, C complex (re, im pairs)
  ZOH:      Ā = exp(ΔA),                 B̄ = B(exp(ΔA) − 1)/A
  bilinear: Ā = (1 + ΔA/2)/(1 − ΔA/2),   B̄ = ΔB/(1 − ΔA/2)
  causal:   x_l = Ā x_{l−1} + B̄ u_l,           y_l = 2·Re Σ_n C x_l + D u_l
  bidirectional adds the strictly-future part with its own C_bwd, run backwards in time:
            z_{L−1} = 0, z_l = Ā z_{l+1} + B̄ u_{l+1},   y_l += 2·Re Σ_n C_bwd z_l
  (so z_l = Σ_{j>l} Ā^{j−l−1} B̄ u_j, i.e. y_l += Σ_{j>l} K_bwd[j−l−1] u_j).

inputs: x (B, L, H); log_dt, D (H); A_re_log, A_im, B_re, B_im, C_re, C_im (H, N/2); optional
C_re_bwd, C_im_bwd (H, N/2) (present = bidirectional); w (B, L, H) the weights of the scalar
loss Σ w ⊙ y; bilinear (1: 0 = ZOH, 1 = bilinear).
outputs: y (B, L, H) and grad_<name> for x and every parameter.
"""
import torch

PARAMS = ["log_dt", "A_re_log", "A_im", "B_re", "B_im", "C_re", "C_im", "D"]
BWD = ["C_re_bwd", "C_im_bwd"]


def run(inputs):
    bidirectional = "C_re_bwd" in inputs
    names = ["x"] + PARAMS + (BWD if bidirectional else [])
    p = {k: inputs[k].clone().requires_grad_(True) for k in names}
    u = p["x"]  # (B, L, H)
    L = u.shape[1]

    dt = torch.exp(p["log_dt"])[:, None]  # (H, 1)
    A = torch.complex(-torch.exp(p["A_re_log"]), p["A_im"])
    B = torch.complex(p["B_re"], p["B_im"])
    C = torch.complex(p["C_re"], p["C_im"])
    dtA = dt * A
    if bool(inputs["bilinear"].item()):
        A_bar = (1 + dtA / 2) / (1 - dtA / 2)
        B_bar = dt * B / (1 - dtA / 2)
    else:
        A_bar = torch.exp(dtA)
        B_bar = B * (torch.exp(dtA) - 1) / A

    uc = u.to(torch.complex128)
    state = torch.zeros(u.shape[0], *A.shape, dtype=torch.complex128)  # (B, H, N/2)
    ys = []
    for l in range(L):
        state = A_bar * state + B_bar * uc[:, l, :, None]
        ys.append(2 * (C * state).sum(-1).real)
    y = torch.stack(ys, dim=1) + p["D"] * u

    if bidirectional:
        C_bwd = torch.complex(p["C_re_bwd"], p["C_im_bwd"])
        z = torch.zeros_like(state)
        future = [None] * L
        for l in range(L - 1, -1, -1):
            future[l] = 2 * (C_bwd * z).sum(-1).real
            z = A_bar * z + B_bar * uc[:, l, :, None]
        y = y + torch.stack(future, dim=1)

    (y * inputs["w"]).sum().backward()
    out = {"y": y}
    out.update({"grad_" + k: p[k].grad for k in names})
    return out
