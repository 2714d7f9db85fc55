"""The parts that make fine-tuning variants out of one loop (``fine_tune``): which tensors train, and an extra term
of the loss. Each works on any backbone with timm's model API (``pretrained_cfg``' first convolution and classifier,
``group_matcher``), the text encoders included.

- ``freeze_embedding``: the stem, or the patch / token embedding, stays as pretrained (freeze-embed, Kumar et al.
  2023, "How to fine-tune vision models with SGD");
- ``train_only_blocks``: one contiguous third of the encoder's blocks trains, with the head (surgical fine-tuning,
  Lee et al. 2022): ``first`` (the stem and the first third), ``middle`` or ``last``;
- ``train_only_biases``: the bias terms train, with the head (BitFit, Ben Zaken et al. 2022);
- ``L2SP``: ``alpha/2 ||w - w0||^2`` over the encoder's weights (w0: the pretrained ones) and ``beta/2 ||W||^2`` over
  the head's weight matrix, added to the training loss (Li, Grandvalet & Davoine 2018).

Batch-norm statistics follow the method's own rule (``fine_tune``'s ``freeze_bn``); a frozen tensor never moves.
"""
from __future__ import annotations

import numpy as np
import torch
from timm.models import group_parameters
from torch import nn

BLOCK_GROUPS = ("first", "middle", "last")


def head_names(model: nn.Module) -> set[str]:
    """The names of the head's parameters."""
    head = model.get_classifier()
    return {name for name, parameter in model.named_parameters() if any(parameter is p for p in head.parameters())}


def _train_only(model: nn.Module, names: set[str]) -> list[str]:
    """Train the parameters ``names`` and the head, freeze the rest; returns the names that train."""
    training = names | head_names(model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in training)
    return sorted(training)


def freeze_embedding(model: nn.Module) -> list[str]:
    """Freeze the module named by the model's ``pretrained_cfg["first_conv"]`` (a ResNet's conv1, a ViT's patch
    embedding, a text encoder's embeddings); returns the frozen names."""
    first = model.pretrained_cfg["first_conv"]
    module = model.get_submodule(first.rsplit(".", 1)[0] if first.endswith((".proj", ".weight")) and
                                 not hasattr(model.get_submodule(first), "weight") else first)
    frozen = {id(parameter) for parameter in module.parameters()}
    names = [name for name, parameter in model.named_parameters() if id(parameter) in frozen]
    if not names:
        raise ValueError(f"{type(model).__name__}: its first layer {first!r} holds no parameters to freeze")
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return names


def block_groups(model: nn.Module) -> tuple[list[str], list[list[str]]]:
    """(the stem's parameter names, each block's parameter names in order), by timm's coarse ``group_matcher``;
    the head is in neither."""
    head = head_names(model)
    groups = [[name for name in names if name not in head]
              for names in group_parameters(model, model.group_matcher(coarse=True)).values()]
    groups = [names for names in groups if names]
    return groups[0], groups[1:]


def train_only_blocks(model: nn.Module, which: str) -> list[str]:
    """Surgical fine-tuning: the ``which`` third of the blocks (``first`` with the stem) and the head train."""
    if which not in BLOCK_GROUPS:
        raise ValueError(f"blocks: {which!r} is not one of {', '.join(BLOCK_GROUPS)}")
    stem, blocks = block_groups(model)
    thirds = [list(part) for part in np.array_split(np.arange(len(blocks)), 3)]
    chosen = thirds[BLOCK_GROUPS.index(which)] or thirds[-1]
    names = {name for index in chosen for name in blocks[index]} | (set(stem) if which == "first" else set())
    return _train_only(model, names)


def train_only_biases(model: nn.Module) -> list[str]:
    """BitFit: every bias term (of convolutions, linear and normalisation layers) and the head train."""
    return _train_only(model, {name for name, _ in model.named_parameters() if name.endswith("bias")})


class L2SP:
    """The L2-SP penalty of ``model``: ``alpha/2 ||w - w0||^2`` over the encoder's parameters, w0 their values now
    (before fine-tuning), plus ``beta/2 ||W||^2`` over the head's weight."""

    def __init__(self, model: nn.Module, *, alpha: float, beta: float):
        self.alpha, self.beta = alpha, beta
        head = head_names(model)
        self.anchors = {name: parameter.detach().clone() for name, parameter in model.named_parameters()
                        if name not in head and parameter.requires_grad}
        self.head_weight = model.get_classifier().weight

    def __call__(self, model: nn.Module) -> torch.Tensor:
        parameters = dict(model.named_parameters())
        drift = sum((parameters[name] - anchor).pow(2).sum() for name, anchor in self.anchors.items())
        return 0.5 * self.alpha * drift + 0.5 * self.beta * self.head_weight.pow(2).sum()
