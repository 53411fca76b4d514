"""Sequential PyTorch reference of the selective scan (Mamba-1) with autograd gradients.

Inputs (float64): u, delta (B, D, L); A (D, N); B, C (B, G, N, L); optional D, delta_bias (D),
z (B, D, L), initial_state (B, D, N); delta_softplus (scalar 0/1); dout (B, D, L) and
dlast (B, D, N), the weights of the loss sum(out * dout) + sum(last_state * dlast).
Returns out, last_state and d_<name> for every differentiable input given.
"""
import torch
import torch.nn.functional as F

OPTIONAL = ("D", "z", "delta_bias", "initial_state")


def run(inputs):
    leaves = {k: inputs[k].clone().requires_grad_() for k in ("u", "delta", "A", "B", "C")}
    leaves.update({k: inputs[k].clone().requires_grad_() for k in OPTIONAL if k in inputs})
    u, delta, A = leaves["u"], leaves["delta"], leaves["A"]
    batch, dim, length = u.shape
    groups, n_state = leaves["B"].shape[1], leaves["B"].shape[2]
    # Channel d reads group d // (D / G).
    Bd = leaves["B"].repeat_interleave(dim // groups, dim=1)  # (B, D, N, L)
    Cd = leaves["C"].repeat_interleave(dim // groups, dim=1)

    dt = delta
    if "delta_bias" in leaves:
        dt = dt + leaves["delta_bias"][None, :, None]
    if bool(inputs["delta_softplus"].item()):
        dt = F.softplus(dt)

    h = leaves.get("initial_state", torch.zeros(batch, dim, n_state, dtype=u.dtype))
    ys = []
    for l in range(length):
        h = torch.exp(dt[:, :, l, None] * A) * h + (dt[:, :, l] * u[:, :, l])[:, :, None] * Bd[..., l]
        ys.append((h * Cd[..., l]).sum(-1))
    y = torch.stack(ys, dim=-1)
    if "D" in leaves:
        y = y + leaves["D"][None, :, None] * u
    out = y * F.silu(leaves["z"]) if "z" in leaves else y

    loss = (out * inputs["dout"]).sum() + (h * inputs["dlast"]).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    result = {"out": out, "last_state": h}
    result.update({"d_" + name: g for name, g in zip(leaves, grads)})
    return result
