"""PyTorch Mamba-3 (SISO) mixer written from the equations (DESIGN §5 and the parameterisation
documented in include/ssm/nn/mamba3.h), with a sequential exponential-trapezoidal recurrence
and autograd gradients, on the mixer's own tensor names.

Inputs (float64): "x" (B, L, d_model), "dy" (B, L, d_model), the mixer's tensors
("in_proj.weight", "dt_bias", "B_bias", "C_bias", "B_norm.weight", "C_norm.weight", "D",
"out_proj.weight") and the scalars "n_groups", "eps" (of B_norm and C_norm) and "A_floor".
Returns "y" and, for the loss sum(y ⊙ dy), "grad.x" and "grad.<name>" of every tensor.

  z, x, B, C, dd_dt, dd_A, trap, ang = split(in_proj(h))
  B, C  = RMSNorm_N(B) + B_bias, RMSNorm_N(C) + C_bias   (head h reads group h // (H / G))
  dt    = softplus(dd_dt + dt_bias),  A = -max(softplus(dd_A), A_floor),  lam = sigmoid(trap)
  phi_t = sum_{s<=t} dt_s * pi * tanh(ang_s)            per head; pair i of B, C turns by phi[i]
  S_t   = alpha S_{t-1} + beta x_{t-1} B_{t-1}^T + gamma x_t B_t^T
          alpha = exp(A dt), beta = (1 - lam) dt alpha, gamma = lam dt
  y_t   = (S_t C_t + D x_t) * silu(z_t),  out = out_proj(y)
Several cases travel in one call (one torch start-up): names prefixed "<case>/" are grouped
by case and the outputs carry the same prefix.
"""
import math

import torch
import torch.nn.functional as F

MIXER_NAMES = ["in_proj.weight", "dt_bias", "B_bias", "C_bias", "B_norm.weight",
               "C_norm.weight", "D", "out_proj.weight"]


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate(v, phi):
    """Turns pair i = (2i, 2i+1) of v (…, N) by phi[..., i]; entries from 2S on pass through."""
    S = phi.shape[-1]
    v0, v1 = v[..., 0:2 * S:2], v[..., 1:2 * S:2]
    c, s = torch.cos(phi), torch.sin(phi)
    turned = torch.stack([v0 * c - v1 * s, v0 * s + v1 * c], dim=-1).flatten(-2)
    return torch.cat([turned, v[..., 2 * S:]], dim=-1)


def mixer(h, w, n_groups, eps, a_floor):
    heads = w["D"].shape[0]
    n = w["B_norm.weight"].shape[0]
    d_inner = w["out_proj.weight"].shape[1]
    head_dim = d_inner // heads
    rows = w["in_proj.weight"].shape[0]
    n_angles = rows - 2 * d_inner - 2 * n_groups * n - 3 * heads
    batch, length, _ = h.shape

    proj = h @ w["in_proj.weight"].T
    z, x, Braw, Craw, dd_dt, dd_A, trap, ang = torch.split(
        proj, [d_inner, d_inner, n_groups * n, n_groups * n, heads, heads, heads, n_angles], -1)
    z = z.reshape(batch, length, heads, head_dim)
    x = x.reshape(batch, length, heads, head_dim)

    def per_head(raw, weight, bias):
        normed = rms_norm(raw.reshape(batch, length, n_groups, n), weight, eps)
        return normed.repeat_interleave(heads // n_groups, dim=2) + bias.reshape(heads, n)

    Bh = per_head(Braw, w["B_norm.weight"], w["B_bias"])  # (B, L, H, N)
    Ch = per_head(Craw, w["C_norm.weight"], w["C_bias"])
    dt = F.softplus(dd_dt + w["dt_bias"])  # (B, L, H)
    A = -torch.clamp(F.softplus(dd_A), min=a_floor)
    lam = torch.sigmoid(trap)
    theta = math.pi * torch.tanh(ang)  # (B, L, S), the same rates for every head
    phi = torch.cumsum(dt[..., None] * theta[:, :, None, :], dim=1)  # (B, L, H, S)
    Bh, Ch = rotate(Bh, phi), rotate(Ch, phi)

    state = torch.zeros(batch, heads, head_dim, n, dtype=h.dtype)
    prev_x = torch.zeros(batch, heads, head_dim, dtype=h.dtype)
    prev_B = torch.zeros(batch, heads, n, dtype=h.dtype)
    ys = []
    for t in range(length):
        alpha = torch.exp(A[:, t] * dt[:, t])  # (B, H)
        beta = (1 - lam[:, t]) * dt[:, t] * alpha
        gamma = lam[:, t] * dt[:, t]
        state = (alpha[..., None, None] * state
                 + beta[..., None, None] * prev_x[..., :, None] * prev_B[..., None, :]
                 + gamma[..., None, None] * x[:, t, :, :, None] * Bh[:, t, :, None, :])
        ys.append((state * Ch[:, t, :, None, :]).sum(-1) + w["D"][:, None] * x[:, t])
        prev_x, prev_B = x[:, t], Bh[:, t]
    y = torch.stack(ys, dim=1) * F.silu(z)  # (B, L, H, P)
    return y.reshape(batch, length, d_inner) @ w["out_proj.weight"].T


def run_case(inputs):
    leaves = {name: inputs[name].clone().requires_grad_() for name in MIXER_NAMES + ["x"]}
    y = mixer(leaves["x"], leaves, int(inputs["n_groups"].item()), float(inputs["eps"].item()),
              float(inputs["A_floor"].item()))
    (y * inputs["dy"]).sum().backward()
    out = {"y": y.detach()}
    for name, t in leaves.items():
        out["grad." + name] = t.grad
    return out


def run(inputs):
    cases = {}
    for key, value in inputs.items():
        case, _, name = key.rpartition("/")
        cases.setdefault(case, {})[name] = value
    result = {}
    for case, case_inputs in cases.items():
        prefix = case + "/" if case else ""
        result.update({prefix + k: v for k, v in run_case(case_inputs).items()})
    return result
