"""What every backbone is: a timm-style model, its input transform, and a fingerprint for caches."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn


@dataclass
class Backbone:
    """A pretrained encoder with a fresh linear head of ``num_classes`` outputs.

    ``model`` follows timm's head API: ``forward_features``, ``forward_head(x, pre_logits=True)`` for the features
    a linear probe sees, ``get_classifier()`` for the head. ``transform`` is the eval transform derived from the
    model's pretrained config; LP and FT see the same one.
    """

    name: str
    model: nn.Module
    transform: Callable
    fingerprint: str

    @property
    def feature_dim(self) -> int:
        return self.model.num_features

    @property
    def head(self) -> nn.Linear:
        return self.model.get_classifier()


def features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The penultimate features a linear probe is trained on."""
    return model.forward_head(model.forward_features(images), pre_logits=True)


class TensorNormalize:
    """uint8 image batches [N, C, H, W] → floats normalised by the backbone's mean and std (picklable)."""

    def __init__(self, mean, std):
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() / 255 - self.mean) / self.std

    def __repr__(self) -> str:
        return f"TensorNormalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"
