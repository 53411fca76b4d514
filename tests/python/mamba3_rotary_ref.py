"""PyTorch reference of Mamba-3's data-dependent rotary embedding, with autograd gradients.

Inputs (float64): x (B, L, H, N); dt (B, L, H); theta (B, L, H, S); optional initial_angle
(B, H, S); dout (B, L, H, N) and dfinal (B, H, S), the weights of the loss
sum(out * dout) + sum(final_angle * dfinal).

  phi_t = initial_angle + cumsum_t(dt_t * theta_t)
  out[2i] = x[2i] cos phi[i] - x[2i+1] sin phi[i],  out[2i+1] = x[2i] sin phi[i] + x[2i+1] cos phi[i]
  out[n] = x[n] for n >= 2S
final_angle is phi_{L-1} mod 2*pi (the remainder has derivative 1).
Several cases travel in one call (one torch start-up): names prefixed "<case>." are grouped
by case and the outputs carry the same prefix.
"""
import math

import torch


def run_case(inputs):
    names = ("x", "dt", "theta") + (("initial_angle",) if "initial_angle" in inputs else ())
    leaves = {k: inputs[k].clone().requires_grad_() for k in names}
    x, dt, theta = leaves["x"], leaves["dt"], leaves["theta"]
    S = theta.shape[-1]
    phi = torch.cumsum(dt[..., None] * theta, dim=1)  # (B, L, H, S)
    if "initial_angle" in leaves:
        phi = phi + leaves["initial_angle"][:, None]
    x0, x1 = x[..., 0:2 * S:2], x[..., 1:2 * S:2]
    c, s = torch.cos(phi), torch.sin(phi)
    rotated = torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1).flatten(-2)
    out = torch.cat([rotated, x[..., 2 * S:]], dim=-1)
    final = torch.remainder(phi[:, -1], 2 * math.pi)

    loss = (out * inputs["dout"]).sum() + (final * inputs["dfinal"]).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    result = {"out": out, "angle": final}
    result.update({"d_" + name: g for name, g in zip(leaves, grads)})
    return result


def run(inputs):
    cases = {}
    for key, value in inputs.items():
        case, _, name = key.rpartition(".")
        cases.setdefault(case, {})[name] = value
    result = {}
    for case, case_inputs in cases.items():
        prefix = case + "." if case else ""
        result.update({prefix + k: v for k, v in run_case(case_inputs).items()})
    return result
