"""PyTorch reference for ssm's losses (forward and autograd).

inputs["kind"]: 0 mse_loss(prediction, target); 1 cross_entropy(logits, targets) with
inputs["ignore_index"] and inputs["label_smoothing"] (targets arrive as float64 and are
converted to int64). inputs["dy"] is the upstream gradient of the scalar loss.
Outputs: loss and the gradient of every float input.
"""
import torch
import torch.nn.functional as F


def run(inputs):
    kind = int(inputs["kind"].item())
    dy = inputs["dy"]
    if kind == 0:
        p = inputs["prediction"].requires_grad_()
        t = inputs["target"].requires_grad_()
        loss = F.mse_loss(p, t)
        loss.backward(dy)
        return {"loss": loss, "gprediction": p.grad, "gtarget": t.grad}
    logits = inputs["logits"].requires_grad_()
    targets = inputs["targets"].long()
    c = logits.shape[-1]
    loss = F.cross_entropy(logits.reshape(-1, c), targets.reshape(-1),
                           ignore_index=int(inputs["ignore_index"].item()),
                           label_smoothing=float(inputs["label_smoothing"].item()))
    loss.backward(dy)
    return {"loss": loss, "glogits": logits.grad}
