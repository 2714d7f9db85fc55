"""The backbones: ``@register_backbone("name")`` on a factory, ``create_backbone("name", ...)``."""
from __future__ import annotations

import inspect
from typing import Callable

from study.models import custom
from study.models.backbone import Backbone
from study.registry import Registry

BACKBONES: Registry[Backbone] = Registry("backbone")
list_backbones = BACKBONES.names
_CHECKS: dict[str, Callable] = {}
_READS_TEXT: set[str] = set()
_MIN_INPUT_SIZE: dict[str, int] = {}


def register_backbone(name: str, *, check: Callable | None = None, reads_text: bool = False,
                      min_input_size: int | None = None):
    """``@register_backbone("name")`` on a factory; ``check(cache_dir=...)``, if given, is what the driver verifies
    before any work (installed packages, files), without building the model; ``reads_text``: its inputs are
    sentences (its transform tokenizes them), not images or vectors; ``min_input_size``: the smallest image side,
    in pixels, it takes (its total stride: smaller inputs leave its last feature map empty)."""
    if check is not None:
        _CHECKS[name] = check
    if reads_text:
        _READS_TEXT.add(name)
    if min_input_size is not None:
        _MIN_INPUT_SIZE[name] = min_input_size
    return BACKBONES.register(name)


def reads_text(name: str) -> bool:
    return name in _READS_TEXT or custom.reads_text(name)


def min_input_size(name: str) -> int:
    """The smallest image side backbone ``name`` takes (1: it says nothing)."""
    return _MIN_INPUT_SIZE.get(name, 1)


def check_backbone(name: str, cache_dir=None, weights=None) -> None:
    """Run backbone ``name``'s own check, if it has one (a model of the user's: its files, its weights against it): a
    missing or damaged input fails in one line, here."""
    if custom.is_custom(name):
        custom.check(name, weights)
    elif name in _CHECKS:
        _CHECKS[name](cache_dir=cache_dir)


def create_backbone(name: str, *, num_classes: int, cache_dir=None, progress: bool = False, weights=None) -> Backbone:
    """A fresh copy of backbone ``name`` (a registered one, or ``timm/ARCH``, ``transformers:FOLDER``) with
    pretrained weights (``weights``: a local file, where the backbone takes one) and a new ``num_classes``-way
    head."""
    options = {"weights": weights} if weights is not None else {}
    factory = custom.create if custom.is_custom(name) else BACKBONES.get(name)
    if custom.is_custom(name):
        options["name"] = name
    return factory(num_classes=num_classes, cache_dir=cache_dir, progress=progress, **options)


def takes_weights(name: str) -> bool:
    """Whether backbone ``name`` reads a local pretrained weights file (``weights=``)."""
    if custom.is_custom(name):
        return not custom.reads_text(name)
    return "weights" in inspect.signature(BACKBONES.get(name)).parameters
