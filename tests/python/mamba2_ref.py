"""PyTorch Mamba-2 written from the equations (DESIGN §5), with a sequential SSD recurrence, on
weights named as in Hugging Face's Mamba2ForCausalLM.

Two modes, chosen by the inputs (all float64):
- mixer: "x" (B, L, d_model), "dy" (B, L, d_model), the mixer's tensors by their own names
  ("in_proj.weight", "conv1d.weight", "conv1d.bias", "dt_bias", "A_log", "D", "norm.weight",
  "out_proj.weight"), "n_groups" and "eps" (scalars). Returns "y" and, for sum(y ⊙ dy),
  "grad.x" and "grad.<name>" of every tensor (PyTorch autograd).
- lm: "ids" (B, L) (integer values), every checkpoint tensor ("backbone.embeddings.weight" or
  "backbone.embedding.weight", "backbone.layers.{i}.…", "backbone.norm_f.weight", optional
  "lm_head.weight"), "n_groups" and "eps". Returns "logits" (B, L, V).
"""
import torch
import torch.nn.functional as F

MIXER_NAMES = ["in_proj.weight", "conv1d.weight", "conv1d.bias", "dt_bias", "A_log", "D",
               "norm.weight", "out_proj.weight"]


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def mixer(h, w, n_groups, eps):
    heads = w["A_log"].shape[0]
    d_inner = w["norm.weight"].shape[0]
    head_dim = d_inner // heads
    conv_dim, _, k = w["conv1d.weight"].shape
    n = (conv_dim - d_inner) // (2 * n_groups)
    batch, length, _ = h.shape

    zxbcdt = h @ w["in_proj.weight"].T
    z = zxbcdt[..., :d_inner]
    xbc = zxbcdt[..., d_inner:d_inner + conv_dim]
    dt = zxbcdt[..., d_inner + conv_dim:]
    # Depthwise causal conv as torch's grouped conv1d with left padding k − 1.
    xbc = F.conv1d(xbc.transpose(1, 2), w["conv1d.weight"], w["conv1d.bias"], padding=k - 1,
                   groups=conv_dim)[..., :length]
    xbc = F.silu(xbc).transpose(1, 2)  # (B, L, conv_dim)
    x = xbc[..., :d_inner].reshape(batch, length, heads, head_dim)
    Bm = xbc[..., d_inner:d_inner + n_groups * n].reshape(batch, length, n_groups, n)
    Cm = xbc[..., d_inner + n_groups * n:].reshape(batch, length, n_groups, n)
    # Head h reads group h // (H / G).
    Bm = Bm.repeat_interleave(heads // n_groups, dim=2)  # (B, L, H, N)
    Cm = Cm.repeat_interleave(heads // n_groups, dim=2)
    dt = F.softplus(dt + w["dt_bias"])  # (B, L, H)
    A = -torch.exp(w["A_log"])  # (H)

    state = torch.zeros(batch, heads, head_dim, n, dtype=h.dtype)
    ys = []
    for l in range(length):
        decay = torch.exp(dt[:, l] * A)[:, :, None, None]
        state = decay * state + (dt[:, l, :, None] * x[:, l])[..., None] * Bm[:, l, :, None, :]
        ys.append((state * Cm[:, l, :, None, :]).sum(-1) + w["D"][:, None] * x[:, l])
    y = torch.stack(ys, dim=1).reshape(batch, length, d_inner)

    # Gated RMSNorm: gate first, then normalise within each of the G groups.
    g = (y * F.silu(z)).reshape(batch, length, n_groups, d_inner // n_groups)
    g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + eps)
    g = g.reshape(batch, length, d_inner) * w["norm.weight"]
    return g @ w["out_proj.weight"].T


def run_mixer(inputs, n_groups, eps):
    leaves = {name: inputs[name].clone().requires_grad_() for name in MIXER_NAMES + ["x"]}
    y = mixer(leaves["x"], leaves, n_groups, eps)
    (y * inputs["dy"]).sum().backward()
    out = {"y": y.detach()}
    for name, t in leaves.items():
        out["grad." + name] = t.grad
    return out


def run_lm(inputs, n_groups, eps):
    ids = inputs["ids"].long()
    emb = inputs.get("backbone.embeddings.weight", inputs.get("backbone.embedding.weight"))
    n_layer = 1 + max(int(k.split(".")[2]) for k in inputs if k.startswith("backbone.layers."))
    h = emb[ids]
    for i in range(n_layer):
        prefix = f"backbone.layers.{i}."
        w = {name: inputs[prefix + "mixer." + name] for name in MIXER_NAMES}
        h = h + mixer(rms_norm(h, inputs[prefix + "norm.weight"], eps), w, n_groups, eps)
    h = rms_norm(h, inputs["backbone.norm_f.weight"], eps)
    head = inputs.get("lm_head.weight", emb)
    return {"logits": h @ head.T}


def run(inputs):
    n_groups = int(inputs["n_groups"].item())
    eps = float(inputs["eps"].item())
    if "ids" in inputs:
        return run_lm(inputs, n_groups, eps)
    return run_mixer(inputs, n_groups, eps)
