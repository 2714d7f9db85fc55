"""Image transforms on uint8 tensors [3, H, W] (torchvision ``transforms.v2``), built from a few numbers.

They only change geometry (resize, crop, flip) and keep uint8, so DataLoader workers never make floats; the
normalisation by mean and std happens on the device (``TensorNormalize``, applied by ``study.data.pipeline``).
Resizing is antialiased, as PIL's is.
"""
from __future__ import annotations

import math

import torch
from torchvision.transforms import InterpolationMode, v2


def eval_transform(size: int, *, resize: int | None = None, crop_pct: float = 0.875,
                   interpolation: str = "bilinear") -> v2.Compose:
    """Resize the short side to ``resize`` (default ``floor(size / crop_pct)``, as timm's eval transform), then
    centre-crop ``size``."""
    resize = resize or math.floor(size / crop_pct)
    return v2.Compose([v2.Resize(resize, interpolation=InterpolationMode(interpolation), antialias=True),
                       v2.CenterCrop(size)])


def train_transform(size: int, *, scale: tuple[float, float] = (0.08, 1.0),
                    interpolation: str = "bilinear") -> v2.Compose:
    """Inception-style augmentation: a random crop of ``scale`` of the area, resized to ``size``, and a random
    horizontal flip."""
    return v2.Compose([v2.RandomResizedCrop(size, scale=scale, interpolation=InterpolationMode(interpolation),
                                            antialias=True),
                       v2.RandomHorizontalFlip()])


class TensorNormalize:
    """uint8 image batches [N, C, H, W] -> floats normalised by ``mean`` and ``std`` (per channel, in [0, 1] units),
    computed on whatever device the batch is on. Picklable."""

    def __init__(self, mean, std):
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.device not in self._on:  # (x / 255 - mean) / std as one multiply and one add, in place
            std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
            mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
            self._on[images.device] = (1 / (255 * std), -mean / std)
        scale, shift = self._on[images.device]
        return images.float().mul_(scale).add_(shift)

    def __getstate__(self) -> dict:
        return {"mean": self.mean, "std": self.std, "_on": {}}

    def __repr__(self) -> str:
        return f"TensorNormalize(mean={list(self.mean)}, std={list(self.std)})"
