"""Sequential PyTorch reference of SSD (Mamba-2's scan) with autograd gradients.

Inputs (float64): x (B, L, H, P); dt (B, L, H); A (H); B, C (B, L, G, N); optional D (H) and
initial_state (B, H, P, N); dy (B, L, H, P) and dfinal (B, H, P, N), the weights of the loss
sum(y * dy) + sum(final_state * dfinal).
Returns y, final_state and d_<name> for every differentiable input given.
"""
import torch

OPTIONAL = ("D", "initial_state")


def run(inputs):
    leaves = {k: inputs[k].clone().requires_grad_() for k in ("x", "dt", "A", "B", "C")}
    leaves.update({k: inputs[k].clone().requires_grad_() for k in OPTIONAL if k in inputs})
    x, dt, A = leaves["x"], leaves["dt"], leaves["A"]
    batch, length, heads, head_dim = x.shape
    groups, n_state = leaves["B"].shape[2], leaves["B"].shape[3]
    # Head h reads group h // (H / G).
    Bh = leaves["B"].repeat_interleave(heads // groups, dim=2)  # (B, L, H, N)
    Ch = leaves["C"].repeat_interleave(heads // groups, dim=2)

    state = leaves.get("initial_state", torch.zeros(batch, heads, head_dim, n_state, dtype=x.dtype))
    ys = []
    for l in range(length):
        decay = torch.exp(dt[:, l] * A)  # (B, H)
        state = decay[:, :, None, None] * state + (dt[:, l, :, None] * x[:, l])[..., None] * Bh[:, l, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", state, Ch[:, l]))
    y = torch.stack(ys, dim=1)
    if "D" in leaves:
        y = y + leaves["D"][None, None, :, None] * x

    loss = (y * inputs["dy"]).sum() + (state * inputs["dfinal"]).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    result = {"y": y, "final_state": state}
    result.update({"d_" + name: g for name, g in zip(leaves, grads)})
    return result
