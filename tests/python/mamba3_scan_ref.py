"""Sequential PyTorch reference of the Mamba-3 (SISO) exponential-trapezoidal scan, with
autograd gradients.

Inputs (float64): x (B, L, H, P); dt, lam (B, L, H); A (H) or (B, L, H); B, C (B, L, G, N);
optional D (H), initial_state (B, H, P, N), initial_B (B, G, N) with initial_x (B, H, P);
dy (B, L, H, P) and dfinal (B, H, P, N), the weights of the loss
sum(y * dy) + sum(final_state * dfinal).
Returns y, final_state and d_<name> for every differentiable input given.
Several cases travel in one call (one torch start-up): names prefixed "<case>." are grouped
by case and the outputs carry the same prefix.

  alpha = exp(A dt), beta = (1 - lam) dt alpha, gamma = lam dt
  S_t = alpha_t S_{t-1} + beta_t x_{t-1} B_{t-1}^T + gamma_t x_t B_t^T,  y_t = S_t C_t + D x_t
"""
import torch

OPTIONAL = ("D", "initial_state", "initial_B", "initial_x")


def run_case(inputs):
    names = ("x", "dt", "A", "lam", "B", "C") + tuple(k for k in OPTIONAL if k in inputs)
    leaves = {k: inputs[k].clone().requires_grad_() for k in names}
    x, dt, lam = leaves["x"], leaves["dt"], leaves["lam"]
    batch, length, heads, head_dim = x.shape
    groups, n_state = leaves["B"].shape[2], leaves["B"].shape[3]
    A = leaves["A"]
    if A.dim() == 1:
        A = A.expand(batch, length, heads)
    # Head h reads group h // (H / G).
    Bh = leaves["B"].repeat_interleave(heads // groups, dim=2)  # (B, L, H, N)
    Ch = leaves["C"].repeat_interleave(heads // groups, dim=2)

    state = leaves.get("initial_state", torch.zeros(batch, heads, head_dim, n_state, dtype=x.dtype))
    if "initial_B" in leaves:
        prev_x = leaves["initial_x"]
        prev_B = leaves["initial_B"].repeat_interleave(heads // groups, dim=1)  # (B, H, N)
    else:
        prev_x = torch.zeros(batch, heads, head_dim, dtype=x.dtype)
        prev_B = torch.zeros(batch, heads, n_state, dtype=x.dtype)
    ys = []
    for t in range(length):
        alpha = torch.exp(A[:, t] * dt[:, t])  # (B, H)
        beta = (1 - lam[:, t]) * dt[:, t] * alpha
        gamma = lam[:, t] * dt[:, t]
        state = (alpha[..., None, None] * state
                 + beta[..., None, None] * prev_x[..., :, None] * prev_B[..., None, :]
                 + gamma[..., None, None] * x[:, t, :, :, None] * Bh[:, t, :, None, :])
        ys.append(torch.einsum("bhpn,bhn->bhp", state, Ch[:, t]))
        prev_x, prev_B = x[:, t], Bh[:, t]
    y = torch.stack(ys, dim=1)
    if "D" in leaves:
        y = y + leaves["D"][None, None, :, None] * x

    loss = (y * inputs["dy"]).sum() + (state * inputs["dfinal"]).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    result = {"y": y, "final_state": state}
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
