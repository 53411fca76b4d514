"""PyTorch forward of a Mamba-1 language model written from the equations (DESIGN §5), with a
sequential selective scan, on weights named as in Hugging Face's MambaForCausalLM.

Inputs (float64): "ids" (B, L) (integer values), every tensor of the checkpoint by name
("backbone.embeddings.weight" or "backbone.embedding.weight", "backbone.layers.{i}.…",
"backbone.norm_f.weight", optional "lm_head.weight"), and "eps" (scalar).
Returns "logits" (B, L, V).
"""
import torch
import torch.nn.functional as F


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def mixer(h, p, prefix):
    w = lambda name: p[prefix + name]
    d_inner = w("in_proj.weight").shape[0] // 2
    k = w("conv1d.weight").shape[-1]
    rank = w("dt_proj.weight").shape[1]
    n = w("A_log").shape[1]
    batch, length, _ = h.shape
    xz = h @ w("in_proj.weight").T
    x, z = xz[..., :d_inner], xz[..., d_inner:]
    # Depthwise causal conv as torch's grouped conv1d with left padding k − 1.
    x = F.conv1d(x.transpose(1, 2), w("conv1d.weight"), w("conv1d.bias"), padding=k - 1, groups=d_inner)
    u = F.silu(x[..., :length]).transpose(1, 2)  # (B, L, D)
    dbc = u @ w("x_proj.weight").T
    dt, Bm, Cm = dbc[..., :rank], dbc[..., rank:rank + n], dbc[..., rank + n:]
    dt = F.softplus(dt @ w("dt_proj.weight").T + w("dt_proj.bias"))  # (B, L, D)
    A = -torch.exp(w("A_log"))  # (D, N)
    state = torch.zeros(batch, d_inner, n, dtype=h.dtype)
    ys = []
    for l in range(length):
        state = torch.exp(dt[:, l, :, None] * A) * state + (dt[:, l] * u[:, l])[:, :, None] * Bm[:, l, None, :]
        ys.append((state * Cm[:, l, None, :]).sum(-1) + w("D") * u[:, l])
    y = torch.stack(ys, dim=1) * F.silu(z)
    return y @ w("out_proj.weight").T


def run(inputs):
    eps = float(inputs["eps"].item())
    ids = inputs["ids"].long()
    emb = inputs.get("backbone.embeddings.weight", inputs.get("backbone.embedding.weight"))
    n_layer = 1 + max(int(k.split(".")[2]) for k in inputs if k.startswith("backbone.layers."))
    h = emb[ids]
    for i in range(n_layer):
        prefix = f"backbone.layers.{i}."
        h = h + mixer(rms_norm(h, inputs[prefix + "norm.weight"], eps), inputs, prefix + "mixer.")
    h = rms_norm(h, inputs["backbone.norm_f.weight"], eps)
    head = inputs.get("lm_head.weight", emb)
    return {"logits": h @ head.T}
