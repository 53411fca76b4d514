"""PyTorch Mamba-1 mixer (DESIGN §5) with autograd gradients, on the mixer's own tensor names.

The forward is mamba_ref.mixer: the equations with a sequential selective scan, written in
torch alone (nothing of ours). Inputs (float64): "x" (B, L, d_model), "dy" (B, L, d_model) and
the mixer's tensors ("in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight",
"dt_proj.weight", "dt_proj.bias", "A_log", "D", "out_proj.weight"). Returns "y" and, for the
loss sum(y ⊙ dy), "grad.x" and "grad.<name>" of every tensor.
Several cases travel in one call (one torch start-up): names prefixed "<case>/" are grouped
by case and the outputs carry the same prefix.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mamba_ref import mixer  # noqa: E402

MIXER_NAMES = ["in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight",
               "dt_proj.weight", "dt_proj.bias", "A_log", "D", "out_proj.weight"]


def run_case(inputs):
    leaves = {name: inputs[name].clone().requires_grad_() for name in MIXER_NAMES + ["x"]}
    y = mixer(leaves["x"], leaves, "")
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
