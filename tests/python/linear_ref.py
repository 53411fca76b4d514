"""PyTorch reference for ssm's matmul and linear (forward and autograd).

Inputs: either a, b, dy (matmul) or x, w, b, dy (linear); dy is the upstream gradient.
Outputs: y and the gradient of every input (ga/gb or gx/gw/gb).
"""
import torch
import torch.nn.functional as F


def run(inputs):
    dy = inputs["dy"]
    if "a" in inputs:
        a = inputs["a"].requires_grad_()
        b = inputs["b"].requires_grad_()
        y = torch.matmul(a, b)
        y.backward(dy)
        return {"y": y, "ga": a.grad, "gb": b.grad}
    x = inputs["x"].requires_grad_()
    w = inputs["w"].requires_grad_()
    b = inputs["b"].requires_grad_()
    y = F.linear(x, w, b)
    y.backward(dy)
    return {"y": y, "gx": x.grad, "gw": w.grad, "gb": b.grad}
