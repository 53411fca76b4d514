"""torch.optim.AdamW over a few steps, with the learning rate changed before each step.

inputs: param (P,), grads (S, P) one gradient per step, lrs (S,) the lr of each step,
        hyper (4,) = [weight_decay, beta1, beta2, eps]
outputs: params (S, P), the parameter after each step
"""
import torch


def run(inputs):
    p = inputs["param"].clone().requires_grad_(True)
    weight_decay, beta1, beta2, eps = inputs["hyper"].tolist()
    opt = torch.optim.AdamW([p], lr=float(inputs["lrs"][0]), betas=(beta1, beta2), eps=eps,
                            weight_decay=weight_decay)
    after = []
    for grad, lr in zip(inputs["grads"], inputs["lrs"]):
        for group in opt.param_groups:
            group["lr"] = float(lr)
        p.grad = grad.clone()
        opt.step()
        after.append(p.detach().clone())
    return {"params": torch.stack(after)}
