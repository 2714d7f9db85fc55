"""Procedural glyph images: the content and the styles of the embedded benchmark.

A glyph class is a fixed combination of strokes drawn from a shared vocabulary of quadratic Bezier curves, so a
network that learned to detect strokes on some glyphs can linearly separate new combinations of them. An image is
one glyph instance (random pose, thickness and small shape jitter) composited in a *style*:

- ``clean``: dark ink on a plain light background (the downstream ID domain),
- ``recolour``: random ink and background colours, same layout (a mild shift),
- ``texture``: random colours over oriented gratings and distractor strokes (a strong shift).

Everything is drawn from a ``torch.Generator``, so the same seed gives the same bytes.
"""
from __future__ import annotations

import math

import torch

STYLES = ("clean", "recolour", "texture")
IMAGE_SIZE = 32
_POINTS_PER_STROKE = 16
_RENDER_BATCH = 512


def stroke_vocabulary(num_strokes: int, seed: int) -> torch.Tensor:
    """Control points of ``num_strokes`` quadratic Bezier strokes, shape [S, 3, 2], in [-0.75, 0.75]."""
    g = torch.Generator().manual_seed(seed)
    start = torch.rand(num_strokes, 2, generator=g) * 1.5 - 0.75
    end = torch.rand(num_strokes, 2, generator=g) * 1.5 - 0.75
    bend = torch.randn(num_strokes, 2, generator=g) * 0.35
    middle = (start + end) / 2 + bend
    return torch.stack([start, middle, end], dim=1).clamp(-0.85, 0.85)


def glyph_classes(num_classes: int, num_strokes: int, strokes_per_glyph: int, seed: int) -> torch.Tensor:
    """Distinct stroke combinations, shape [C, strokes_per_glyph] of indices into the vocabulary."""
    g = torch.Generator().manual_seed(seed)
    seen: set[tuple[int, ...]] = set()
    classes = []
    while len(classes) < num_classes:
        combo = tuple(sorted(torch.randperm(num_strokes, generator=g)[:strokes_per_glyph].tolist()))
        if combo not in seen:
            seen.add(combo)
            classes.append(combo)
    return torch.tensor(classes)


def render(vocabulary: torch.Tensor, glyphs: torch.Tensor, labels: torch.Tensor, style: str,
           generator: torch.Generator) -> torch.Tensor:
    """Images of ``glyphs[labels]`` in ``style``: uint8 [N, 3, 32, 32]."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
    chunks = [_render_chunk(vocabulary, glyphs, part, style, generator) for part in labels.split(_RENDER_BATCH)]
    return torch.cat(chunks) if chunks else torch.zeros(0, 3, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8)


def _render_chunk(vocabulary, glyphs, labels, style, g) -> torch.Tensor:
    n = len(labels)
    mask = _ink_mask(_posed_points(vocabulary[glyphs[labels]], g), _uniform(g, n, 1, 0.055, 0.085))
    background, ink = _STYLE_PAINTERS[style](n, g)
    image = background * (1 - mask) + ink * mask
    image = image + 0.03 * torch.randn(image.shape, generator=g)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)


def _uniform(g: torch.Generator, *shape_and_range) -> torch.Tensor:
    *shape, low, high = shape_and_range
    return low + (high - low) * torch.rand(*shape, generator=g)


def _posed_points(control: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Sample points along each instance's strokes after shape jitter and a random pose: [N, P, 2]."""
    n = control.shape[0]
    control = control + 0.05 * torch.randn(control.shape, generator=g)
    t = torch.linspace(0, 1, _POINTS_PER_STROKE).view(1, 1, -1, 1)
    p0, p1, p2 = (control[:, :, i : i + 1, :] for i in range(3))
    points = ((1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2).reshape(n, -1, 2)
    angle = _uniform(g, n, -0.35, 0.35)
    scale = _uniform(g, n, 0.85, 1.1)
    rotation = torch.stack([torch.cos(angle), -torch.sin(angle), torch.sin(angle), torch.cos(angle)], -1)
    rotation = rotation.view(n, 2, 2) * scale.view(n, 1, 1)
    shift = _uniform(g, n, 1, 2, -0.12, 0.12)
    return points @ rotation.transpose(1, 2) + shift


def _pixel_grid() -> torch.Tensor:
    coords = (torch.arange(IMAGE_SIZE) + 0.5) / IMAGE_SIZE * 2 - 1
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([xx, yy], -1).view(1, -1, 2)


def _ink_mask(points: torch.Tensor, thickness: torch.Tensor) -> torch.Tensor:
    """Soft mask [N, 1, H, W] of pixels within ``thickness`` of any stroke point."""
    distance = torch.cdist(_pixel_grid().expand(points.shape[0], -1, -1), points).amin(-1)
    mask = torch.sigmoid((thickness - distance) / 0.015)
    return mask.view(-1, 1, IMAGE_SIZE, IMAGE_SIZE)


def _clean(n: int, g: torch.Generator):
    background = _uniform(g, n, 1, 1, 1, 0.78, 0.92).expand(n, 3, 1, 1)
    ink = _uniform(g, n, 1, 1, 1, 0.05, 0.2).expand(n, 3, 1, 1)
    return background, ink


def _random_colours(n: int, g: torch.Generator):
    """A background colour and an ink colour that differ in brightness by at least 0.35, either polarity."""
    background = torch.rand(n, 3, 1, 1, generator=g)
    ink = torch.rand(n, 3, 1, 1, generator=g)
    gap = ink.mean(1, keepdim=True) - background.mean(1, keepdim=True)
    push = torch.where(gap >= 0, 1.0, -1.0) * (0.35 - gap.abs()).clamp(min=0)
    return background, (ink + push).clamp(0, 1)


def _texture(n: int, g: torch.Generator):
    background, ink = _random_colours(n, g)
    grid = _pixel_grid().view(1, IMAGE_SIZE, IMAGE_SIZE, 2)
    texture = torch.zeros(n, 1, IMAGE_SIZE, IMAGE_SIZE)
    for _ in range(3):
        angle = _uniform(g, n, 1, 1, 1, 0, math.pi)
        frequency = _uniform(g, n, 1, 1, 1, 2.0, 7.0)
        phase = _uniform(g, n, 1, 1, 1, 0, 2 * math.pi)
        along = grid[..., 0].unsqueeze(1) * torch.cos(angle) + grid[..., 1].unsqueeze(1) * torch.sin(angle)
        texture = texture + torch.sin(math.pi * frequency * along + phase) / 3
    tint = torch.rand(n, 3, 1, 1, generator=g) - 0.5
    return (background + 0.35 * texture * (1 + tint)).clamp(0, 1), ink


_STYLE_PAINTERS = {"clean": _clean, "recolour": _random_colours, "texture": _texture}
