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
    world = ToyWorld(**world)
    b_star, _, _ = world.truth()
    noise = torch.randn(b_star.shape, generator=world.generator(99)) / world.input_dim ** 0.5
    model = TwoLayerLinear(world.input_dim, world.feature_dim, num_classes)
    with torch.no_grad():
        model.encoder.weight.copy_(b_star + world.pretrained_noise * noise)
    return Backbone("toy-linear", model, transform=None, normalize=None, fingerprint=world.fingerprint())
