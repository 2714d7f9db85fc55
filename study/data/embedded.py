"""The embedded default: an offline glyph benchmark whose downstream task shifts in style.

The world (see ``glyphs.py``): 24 stroke shapes. The *source* task that the embedded backbone is pretrained on has
64 glyph classes built from strokes 0-11 only, drawn in every style. The *downstream* task has 40 new glyph classes,
each made of one familiar stroke and two unseen ones (strokes 12-23), so pretrained features help but do not
solve it and fine-tuning has something to learn. Downstream training data are ``clean`` only; the OOD domains are
``recolour`` (a mild shift) and ``texture`` (a strong one), both seen during pretraining, as ImageNet holds
sketches and photos alike.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from study.cache import cache_root, cached, content_hash
from study.data import glyphs
from study.data.benchmark import Benchmark, TensorImages
from study.data.registry import register_benchmark

GENERATOR_VERSION = 1


@dataclass(frozen=True)
class GlyphWorld:
    """Everything that fixes the glyph data; its hash names the cache files."""

    seed: int = 0
    num_strokes: int = 24
    source_strokes: int = 12
    source_classes: int = 64
    source_per_class: int = 200
    downstream_classes: int = 40
    train_per_class: int = 50
    val_per_class: int = 20
    test_per_class: int = 30

    def fingerprint(self) -> str:
        return content_hash("glyphs", GENERATOR_VERSION, asdict(self))

    def vocabulary(self) -> torch.Tensor:
        return glyphs.stroke_vocabulary(self.num_strokes, self.seed)

    def source_glyphs(self) -> torch.Tensor:
        return glyphs.glyph_classes(self.source_classes, self.source_strokes, 3, self.seed + 1)

    def downstream_glyphs(self) -> torch.Tensor:
        """One familiar stroke and two unseen ones per class, all combinations distinct."""
        g = torch.Generator().manual_seed(self.seed + 2)
        novel = self.num_strokes - self.source_strokes
        combos: list[tuple[int, ...]] = []
        while len(combos) < self.downstream_classes:
            familiar = torch.randint(self.source_strokes, (1,), generator=g)
            unseen = self.source_strokes + torch.randperm(novel, generator=g)[:2]
            combo = tuple(sorted(torch.cat([familiar, unseen]).tolist()))
            if combo not in combos:
                combos.append(combo)
        return torch.tensor(combos)


def _draw(world: GlyphWorld, classes: torch.Tensor, per_class: int, styles, g: torch.Generator):
    """``per_class`` images of each class, each in a style drawn uniformly from ``styles``, shuffled."""
    labels = torch.arange(len(classes)).repeat(per_class)
    labels = labels[torch.randperm(len(labels), generator=g)]
    style_of = torch.randint(len(styles), (len(labels),), generator=g)
    images = torch.empty(len(labels), 3, glyphs.IMAGE_SIZE, glyphs.IMAGE_SIZE, dtype=torch.uint8)
    vocabulary = world.vocabulary()
    for index, style in enumerate(styles):
        chosen = style_of == index
        images[chosen] = glyphs.render(vocabulary, classes, labels[chosen], style, g)
    return images, labels


def source_task(world: GlyphWorld, cache_dir=None) -> dict[str, torch.Tensor]:
    """The pretraining data: every source glyph in every style (cached)."""
    def generate():
        g = torch.Generator().manual_seed(world.seed + 100)
        images, labels = _draw(world, world.source_glyphs(), world.source_per_class, glyphs.STYLES, g)
        return {"images": images, "labels": labels}

    return cached(cache_root(cache_dir) / "benchmarks" / f"glyph-source-{world.fingerprint()}.pt", generate)


def downstream_splits(world: GlyphWorld, cache_dir=None) -> dict[str, dict[str, torch.Tensor]]:
    """The downstream splits as uint8 tensors (cached): clean train/val/test, and val/test per OOD style."""
    def generate():
        g = torch.Generator().manual_seed(world.seed + 200)
        classes = world.downstream_glyphs()
        plan = {"train": ("clean", world.train_per_class), "id_val": ("clean", world.val_per_class),
                "id_test": ("clean", world.test_per_class)}
        for style in glyphs.STYLES[1:]:
            plan[f"{style}_val"] = (style, world.val_per_class)
            plan[f"{style}_test"] = (style, world.test_per_class)
        splits = {}
        for split, (style, per_class) in plan.items():
            images, labels = _draw(world, classes, per_class, (style,), g)
            splits[split] = {"images": images, "labels": labels}
        return splits

    return cached(cache_root(cache_dir) / "benchmarks" / f"glyph-shift-{world.fingerprint()}.pt", generate)


@register_benchmark("glyphs")
def glyph_shift(*, cache_dir=None, name: str = "glyphs", **world_options) -> Benchmark:
    """Clean glyphs (ID) → recoloured (mild OOD) and textured (strong OOD) glyphs; 40 classes, 32×32 RGB."""
    world = GlyphWorld(**world_options)
    splits = {split: TensorImages(data["images"], data["labels"])
              for split, data in downstream_splits(world, cache_dir).items()}
    return Benchmark(name=name, classes=tuple(f"glyph{i:02d}" for i in range(world.downstream_classes)),
                     ood_domains=glyphs.STYLES[1:], splits=splits, fingerprint=world.fingerprint())


@register_benchmark("glyphs-small")
def small_glyph_shift(*, cache_dir=None) -> Benchmark:
    """``glyphs`` with 2/5 of its images (per class 20 train, 8 val, 12 test): the smoke study's, for tests and
    cluster checks (the same world, so the same pretrained glyphnet)."""
    return glyph_shift(cache_dir=cache_dir, name="glyphs-small", train_per_class=20, val_per_class=8,
                       test_per_class=12)
