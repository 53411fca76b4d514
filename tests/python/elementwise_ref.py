"""PyTorch references for tests/ops/test_elementwise.cpp and tests/ops/test_shape_ops.cpp.

Each group runs only when its inputs are present:
  x, w            activations: output and d/dx sum(w * f(x)) for each f
  a, b, c, wab    mul / div broadcasting and a composite; gradients of sum(wab * y)
  glu_x, glu_w    glu over dim 1 and d/dx sum(glu_w * glu(x))
"""
import torch
import torch.nn.functional as F


def _value_and_grads(fn, weight, *args):
    leaves = [t.clone().requires_grad_(True) for t in args]
    y = fn(*leaves)
    grads = torch.autograd.grad((y * weight).sum(), leaves)
    return y, grads


def run(inputs):
    out = {}
    if "x" in inputs:
        activations = {
            "gelu_erf": lambda t: F.gelu(t),
            "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
            "softplus": F.softplus,
            "silu": F.silu,
            "sigmoid": torch.sigmoid,
            "tanh": torch.tanh,
        }
        for name, fn in activations.items():
            y, (g,) = _value_and_grads(fn, inputs["w"], inputs["x"])
            out[name] = y
            out[name + "_grad"] = g
    if "a" in inputs:
        a, b, c, wab = inputs["a"], inputs["b"], inputs["c"], inputs["wab"]
        y, (ga, gb) = _value_and_grads(lambda p, q: p * q, wab, a, b)
        out["mul"], out["mul_grad_a"], out["mul_grad_b"] = y, ga, gb
        y, (ga, gc) = _value_and_grads(lambda p, q: p / q, wab, a, c)
        out["div"], out["div_grad_a"], out["div_grad_c"] = y, ga, gc
        y, (ga, gb, gc) = _value_and_grads(
            lambda p, q, r: F.silu(p * q) / r + F.gelu(p - r, approximate="tanh") * F.softplus(q),
            wab, a, b, c)
        out["composite"] = y
        out["composite_grad_a"], out["composite_grad_b"], out["composite_grad_c"] = ga, gb, gc
    if "glu_x" in inputs:
        y, (g,) = _value_and_grads(lambda t: F.glu(t, dim=1), inputs["glu_w"], inputs["glu_x"])
        out["glu"], out["glu_grad"] = y, g
    return out
