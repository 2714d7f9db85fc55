"""What every backbone is: a timm-style model, its input transform and normalisation, and a fingerprint for caches."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from study.cache import content_hash


@dataclass
class Backbone:
    """A pretrained encoder with a fresh linear head of ``num_classes`` outputs.

    ``model`` follows timm's head API: ``forward_features``, ``forward_head(x, pre_logits=True)`` for the features
    a linear probe sees, ``get_classifier()`` for the head. ``transform`` is the eval transform derived from the
    model's pretrained config, on uint8 images (None: the data need none); ``normalize`` turns the uint8 batches
    into the model's inputs on the device (``study.data.transforms.TensorNormalize``; None for inputs that are
    already floats). LP and FT see the same ones.
    """

    name: str
    model: nn.Module
    transform: Callable | None
    normalize: Callable | None
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


class WeightsError(FileNotFoundError):
    """A backbone's weights file is missing or is not the checkpoint it should be (one line: path and fix)."""


def weights_fingerprint(name: str, weights: str | os.PathLike | None) -> str:
    if weights is None:
        return content_hash(name, "hub")
    stat = Path(weights).stat()
    return content_hash(name, str(Path(weights).resolve()), stat.st_size, stat.st_mtime_ns)


def require_file(path: str | os.PathLike, what: str, source: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file ({what} expected); get it from {source}")
    return path
