"""One registry of backbones: ``@register_backbone("name")`` on a factory, ``create_backbone("name", ...)``."""
from __future__ import annotations

from typing import Callable

from study.models.backbone import Backbone

_BACKBONES: dict[str, Callable[..., Backbone]] = {}


def register_backbone(name: str):
    def decorate(factory: Callable[..., Backbone]):
        if name in _BACKBONES:
            raise ValueError(f"backbone {name!r} is registered twice")
        _BACKBONES[name] = factory
        return factory

    return decorate


def list_backbones() -> list[str]:
    return sorted(_BACKBONES)


def create_backbone(name: str, *, num_classes: int, cache_dir=None, progress: bool = False, **options) -> Backbone:
    """A fresh copy of backbone ``name`` with pretrained weights and a new ``num_classes``-way head."""
    if name not in _BACKBONES:
        raise KeyError(f"unknown backbone {name!r}; choose one of {', '.join(list_backbones())}")
    return _BACKBONES[name](num_classes=num_classes, cache_dir=cache_dir, progress=progress, **options)
