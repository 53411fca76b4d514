"""PyTorch references for ssm's sequence convolutions (ops/conv.h), run through torch_bridge.py.

Inputs with 'weight': depthwise causal conv1d, x (B, D, L), weight (D, k), bias (D), and an
upstream gradient gy (B, D, L). Inputs with 'k': causal FFT convolution, u (B, H, L), k (H, L),
gy (B, H, L). Returns the output and the gradients of sum(gy * y).
"""
import torch
import torch.nn.functional as F


def causal_conv1d(x, weight, bias):
    channels, width = weight.shape
    # Left padding by width-1 makes the convolution causal; groups=D makes it depthwise.
    return F.conv1d(F.pad(x, (width - 1, 0)), weight.unsqueeze(1), bias, groups=channels)


def fft_conv(u, k):
    n = 2 * u.shape[-1]
    spectrum = torch.fft.rfft(u, n=n) * torch.fft.rfft(k, n=n)
    return torch.fft.irfft(spectrum, n=n)[..., : u.shape[-1]]


def run(inputs):
    gy = inputs["gy"]
    if "weight" in inputs:
        x, w, b = (inputs[n].clone().requires_grad_() for n in ("x", "weight", "bias"))
        y = causal_conv1d(x, w, b)
        y.backward(gy)
        return {"y": y, "dx": x.grad, "dweight": w.grad, "dbias": b.grad}
    u, k = (inputs[n].clone().requires_grad_() for n in ("u", "k"))
    y = fft_conv(u, k)
    y.backward(gy)
    return {"y": y, "du": u.grad, "dk": k.grad}
