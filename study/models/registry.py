"""The backbones: ``@register_backbone("name")`` on a factory, ``create_backbone("name", ...)``."""
from __future__ import annotations

import inspect

from study.models.backbone import Backbone
from study.registry import Registry

BACKBONES: Registry[Backbone] = Registry("backbone")
register_backbone = BACKBONES.register
list_backbones = BACKBONES.names


def create_backbone(name: str, *, num_classes: int, cache_dir=None, progress: bool = False, weights=None) -> Backbone:
    """A fresh copy of backbone ``name`` with pretrained weights (``weights``: a local file, where the backbone takes
    one) and a new ``num_classes``-way head."""
    options = {"weights": weights} if weights is not None else {}
    return BACKBONES.get(name)(num_classes=num_classes, cache_dir=cache_dir, progress=progress, **options)


def takes_weights(name: str) -> bool:
    """Whether backbone ``name`` reads a local pretrained weights file (``weights=``)."""
    return "weights" in inspect.signature(BACKBONES.get(name)).parameters
