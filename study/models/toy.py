"""The theory's two-layer linear network f(x) = V B x, with timm's head API, and its "good" pretrained B0."""
from __future__ import annotations

import torch
from torch import nn

from study.data.toy import ToyWorld
from study.models.backbone import Backbone
from study.models.registry import register_backbone


class TwoLayerLinear(nn.Module):
    """Features B x (``encoder``, no bias: the theory's B) and a linear head V (``head``)."""

    def __init__(self, input_dim: int, feature_dim: int, num_classes: int):
        super().__init__()
        self.num_features = feature_dim
        self.encoder = nn.Linear(input_dim, feature_dim, bias=False)
        self.head = nn.Linear(feature_dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return features if pre_logits else self.head(features)

    def get_classifier(self) -> nn.Linear:
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_backbone("toy-linear")
def toy_linear(*, num_classes: int, cache_dir=None, progress: bool = False, **world) -> Backbone:
    """B0 = B* + noise: pretrained features close to the true ones, as the theory assumes."""
    return _toy_backbone("toy-linear", ToyWorld(**world), num_classes)


@register_backbone("toy-linear-regression")
def toy_linear_regression(*, num_classes: int, cache_dir=None, progress: bool = False, **world) -> Backbone:
    """B0 = B* + noise outside the ID subspace: the theorem's regression setting, one output."""
    return _toy_backbone("toy-linear-regression", ToyWorld(**{"task": "regression", **world}), num_classes)


def _toy_backbone(name: str, world: ToyWorld, num_classes: int) -> Backbone:
    model = TwoLayerLinear(world.input_dim, world.feature_dim, num_classes)
    with torch.no_grad():
        model.encoder.weight.copy_(world.pretrained())
    return Backbone(name, model, transform=None, normalize=None, fingerprint=world.fingerprint())
