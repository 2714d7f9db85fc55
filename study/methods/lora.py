"""LoRA as an FT variant (Tomihari & Sato 2024): the encoder's weights stay frozen, each of its linear and
convolution layers learns a low-rank update, and the head trains in full.

    y = W x + scale * B (A x)      A: rank x in (random), B: out x rank (zeros), so training starts at the
                                   pretrained model exactly

Written here (about 40 lines) rather than taken from peft. ``peft.inject_adapter_in_model`` would serve: it edits
a timm model in place, so ``forward_features`` and ``get_classifier`` stay. But peft installs ``transformers``,
``accelerate`` and ``huggingface_hub`` with it (peft 0.21), which the vision path needs for nothing else, and
its rule for choosing layers would have to be spelled out as a list of module names anyway. A convolution's update
is a convolution to ``rank`` channels with the layer's own kernel, stride, padding and dilation, then a 1x1
convolution back, as peft's; grouped (depthwise) convolutions keep no adapter.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
from torch import nn

from study.data import Pipeline
from study.methods.evaluation import EpochResult
from study.methods.ft import fine_tune


class LoRA(nn.Module):
    """A frozen layer plus a trainable low-rank update ``scale * up(down(x))``; with ``dora`` (DoRA, Liu et al.
    2024), the updated weight's direction times a trainable magnitude per output unit:
    ``m * (W + scale B A) / ||W + scale B A||``, the norm taken as a constant in backward (the paper's choice, and
    peft's), ``m`` starting at ``||W||`` so that the layer starts as the pretrained one."""

    def __init__(self, base: nn.Linear | nn.Conv2d, rank: int, scale: float, dora: bool = False):
        super().__init__()
        self.base, self.scale = base, scale
        if isinstance(base, nn.Linear):
            self.down = nn.Linear(base.in_features, rank, bias=False)
            self.up = nn.Linear(rank, base.out_features, bias=False)
        else:
            # the layer's own class: a TensorFlow-style "same" convolution (timm's Conv2dSame) pads as it does
            self.down = type(base)(base.in_channels, rank, base.kernel_size, base.stride, base.padding,
                                   base.dilation, bias=False)
            self.up = nn.Conv2d(rank, base.out_channels, 1, bias=False)
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.up.weight)
        self.down.to(base.weight.device, base.weight.dtype)
        self.up.to(base.weight.device, base.weight.dtype)
        self.magnitude = nn.Parameter(_unit_norms(base.weight.detach())) if dora else None

    def delta(self) -> torch.Tensor:
        """The update as a weight of the base layer's shape: ``B A`` (a convolution's: its 1x1 up after its down)."""
        if isinstance(self.base, nn.Linear):
            return self.up.weight @ self.down.weight
        return torch.einsum("or,rikl->oikl", self.up.weight[:, :, 0, 0], self.down.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = self.scale * self.up(self.down(x))
        if self.magnitude is None:
            return self.base(x) + update
        # the layer is linear in its weight: (W + scale B A) x = (base(x) - bias) + update
        norms = _unit_norms(self.base.weight + self.scale * self.delta()).detach()
        shape = (-1,) if isinstance(self.base, nn.Linear) else (1, -1, 1, 1)
        bias = 0 if self.base.bias is None else self.base.bias.view(shape)
        return (self.magnitude / norms).view(shape) * (self.base(x) - bias + update) + bias


def _unit_norms(weight: torch.Tensor) -> torch.Tensor:
    """The norm of each output unit's weights (a linear layer's rows, a convolution's filters)."""
    return weight.flatten(1).norm(dim=1)


def add_lora(model: nn.Module, *, rank: int, scale: float, dora: bool = False) -> list[str]:
    """Freeze ``model`` but its classifier, and wrap every linear and (ungrouped) convolution layer of the encoder
    in ``LoRA``; returns the names of the wrapped layers. Batch-norm statistics are left to the caller. A model
    that says how it takes LoRA (``adapt_with_lora``: the text backbone, through peft) is adapted its own way."""
    if hasattr(model, "adapt_with_lora"):
        return model.adapt_with_lora(rank=rank, scale=scale, dora=dora)
    head = model.get_classifier()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in head.parameters():
        parameter.requires_grad_(True)
    targets = [(name, module) for name, module in model.named_modules()
               if module is not head and (isinstance(module, nn.Linear) or
                                          isinstance(module, nn.Conv2d) and module.groups == 1)]
    if not targets:
        raise ValueError(f"{type(model).__name__} has no linear or convolution layer outside its head to adapt")
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, LoRA(module, rank, scale, dora))
    return [name for name, _ in targets]


def lora_ft(model: nn.Module, data: Pipeline, *, rank: int, scale: float, dora: bool = False, **ft_options
            ) -> Iterator[EpochResult]:
    """LoRA (DoRA with ``dora``) as a method: ``add_lora``, then ``fine_tune`` the adapters and the head. Batch norm
    stays frozen, as the encoder changes only through its adapters."""
    add_lora(model, rank=rank, scale=scale, dora=dora)
    yield from fine_tune(model, data, freeze_bn=True, **ft_options)
