"""Selective projection decay (Tian et al., NeurIPS 2024, "Rethinking weight decay for robust fine-tuning of
foundation models"): Adam whose only decay pulls a layer back toward its starting weights, and only when that layer's
step is inconsistent.

For every parameter tensor w (a layer), with w0 its value when fine-tuning began (the pretrained weights; a new
head's initial values) and g its gradient:

1. the Adam step, without weight decay: ``w' = w - lr * m_hat / (sqrt(v_hat) + eps)``;
2. the condition ``c = -<g, w - w0>``: if ``c < 0`` (the gradient's descent direction points back toward w0 while
   the step moved away), the step is projected toward w0 by the ratio by which it grew the distance to w0,
   ``r = clip((|w' - w0| - |w - w0|) / |w' - w0|, 0, 1)``: ``w' <- w' - strength * r * (w' - w0)``.

With ``strength`` 0 it is AdamW with no weight decay, step for step (a test checks it against torch's). The update
follows the authors' optimizer (GT-RIPL/Selective-Projection-Decay, ``adamSPD.py``): the moments, the bias
corrections, ``eps`` added after the square root, the condition per tensor from the raw gradient, the ratio through
a hard tanh. Compared with that file (commit b3776955) over 50 steps of a small network at strength 0.7:
identical, bit for bit.
"""
from __future__ import annotations

import math

import torch


class SelectiveProjectionDecay(torch.optim.Optimizer):
    """Adam with selective projection decay toward each parameter's value at construction (see the module)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 strength: float = 0.0):
        if lr < 0 or eps < 0 or not all(0 <= beta < 1 for beta in betas) or strength < 0:
            raise ValueError(f"invalid SPD settings: lr={lr}, betas={betas}, eps={eps}, strength={strength}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, strength=strength))
        for group in self.param_groups:
            for parameter in group["params"]:
                self.state[parameter]["anchor"] = parameter.detach().clone()

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                state = self.state[parameter]
                if "step" not in state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(parameter)
                    state["exp_avg_sq"] = torch.zeros_like(parameter)
                state["step"] += 1
                self._update(parameter, parameter.grad, state, group, beta1, beta2)
        return loss

    @staticmethod
    def _update(parameter: torch.Tensor, grad: torch.Tensor, state: dict, group: dict, beta1: float,
                beta2: float) -> None:
        step, anchor = state["step"], state["anchor"]
        state["exp_avg"].mul_(beta1).add_(grad, alpha=1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denominator = (state["exp_avg_sq"].sqrt() / math.sqrt(1 - beta2 ** step)).add_(group["eps"])
        moved = parameter - (group["lr"] / (1 - beta1 ** step)) * state["exp_avg"] / denominator
        if group["strength"] and -torch.sum(grad * (parameter - anchor)) < 0:
            after, before = torch.norm(moved - anchor), torch.norm(parameter - anchor)
            ratio = torch.clamp((after - before) / after, 0.0, 1.0) if after > 0 else after.new_zeros(())
            moved = moved - group["strength"] * ratio * (moved - anchor)
        parameter.copy_(moved)
