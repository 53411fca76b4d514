"""PyTorch reference for ssm's normalisations (forward, autograd, BatchNorm running stats).

inputs["kind"] picks the op (the codes are shared with tests/ops/test_norm.cpp):
  0 layer_norm(x, w, b)   1 rms_norm(x, w)   2 gated_rms_norm(x, z, w, group_size)
  3 batch_norm training (x, w, b, running_mean, running_var, momentum)
  4 batch_norm eval     (x, w, b, running_mean, running_var)
inputs["eps"] is the epsilon, inputs["dy"] the upstream gradient.
Outputs: y, gradients g<name> for every float input, and the updated running stats.
"""
import torch
import torch.nn.functional as F


def run(inputs):
    kind = int(inputs["kind"].item())
    eps = float(inputs["eps"].item())
    dy = inputs["dy"]
    x = inputs["x"].requires_grad_()
    w = inputs["w"].requires_grad_()
    out = {}
    if kind == 0:
        b = inputs["b"].requires_grad_()
        y = F.layer_norm(x, (x.shape[-1],), w, b, eps)
        leaves = {"x": x, "w": w, "b": b}
    elif kind == 1:
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w
        leaves = {"x": x, "w": w}
    elif kind == 2:
        z = inputs["z"].requires_grad_()
        group = int(inputs["group_size"].item())
        u = x * F.silu(z)
        ug = u.reshape(*u.shape[:-1], -1, group)
        y = (ug * torch.rsqrt(ug.pow(2).mean(-1, keepdim=True) + eps)).reshape(u.shape) * w
        leaves = {"x": x, "z": z, "w": w}
    else:
        b = inputs["b"].requires_grad_()
        rm = inputs["running_mean"].clone()
        rv = inputs["running_var"].clone()
        momentum = float(inputs["momentum"].item()) if "momentum" in inputs else 0.1
        d = x.shape[-1]
        y = F.batch_norm(x.reshape(-1, d), rm, rv, w, b, training=(kind == 3),
                         momentum=momentum, eps=eps).reshape(x.shape)
        leaves = {"x": x, "w": w, "b": b}
        out["running_mean"] = rm
        out["running_var"] = rv
    y.backward(dy)
    out["y"] = y
    for name, t in leaves.items():
        out["g" + name] = t.grad
    return out
