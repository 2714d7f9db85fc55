"""Real data sets on disk: where they live, how their images are read, and how splits are carved out of them.

Every loader reads a *data root* (the config's ``data_root``, ``--data-root`` or ``$LPFT_DATA_ROOT``) holding each
data set in its official layout, and never downloads anything unless asked. A missing or malformed root is a
``DataError``: one line naming the path expected, what was found, and where the data set is obtained.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image, read_file

from study.cache import content_hash

ENV_VAR = "LPFT_DATA_ROOT"
HOLDOUT_SEED = 0  # fixed: every trial, seed and method sees the same splits


class DataError(FileNotFoundError):
    """A data set is missing or malformed on disk (one line: the path, what was found, where to get it)."""


def resolve_data_root(configured: str | os.PathLike | None = None) -> Path:
    root = configured or os.environ.get(ENV_VAR)
    if not root:
        raise DataError(f"no data root: pass --data-root DIR (or set ${ENV_VAR}) to the folder that holds the "
                        "data sets in their official layouts (see the README's table of benchmarks)")
    return Path(root).expanduser().resolve()


def require(path: Path, what: str, source: str) -> Path:
    """``path`` if it exists, else a DataError that says what was expected there and where to get it."""
    if path.exists():
        return path
    parent = next((p for p in path.parents if p.exists()), None)
    found = f"{parent} holds {sorted(c.name for c in parent.iterdir())[:8]}" if parent else "nothing"
    raise DataError(f"{path}: not found ({what} expected here; {found}); get it from {source}")


@contextmanager
def reading(path: Path, what: str, source: str):
    """Turn whatever a damaged ``path`` makes its reader raise (pickle, numpy, json, pandas) into one line: the
    file, what is wrong with it, and where to get a fresh copy."""
    try:
        yield
    except DataError:
        raise
    except Exception as error:  # every reader raises its own types for a truncated or garbled file
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else "no details"
        raise damaged(path, what, f"{type(error).__name__}: {reason}", source) from None


def damaged(path: Path, what: str, problem: str, source: str) -> DataError:
    return DataError(f"{path}: not a readable {what} ({problem}): the file is damaged or incomplete; get a fresh "
                     f"copy from {source}")


class ImageFiles(Dataset):
    """Images read from files as uint8 tensors [3, H, W], then ``transform``-ed.

    Decoded by torchvision (libjpeg-turbo, PNG by content, whatever the suffix), always to RGB: ImageNet holds
    grayscale, CMYK and RGBA JPEGs. Measured against PIL on 500x375 JPEGs at 224 px, decoding and transforming
    uint8 tensors this way is 1.5-1.8x faster per core (``benchmarks/input_pipeline.py``). Paths are kept as
    strings: a million of them pickle to the workers quickly.
    """

    def __init__(self, paths: Sequence[str | Path], labels: Sequence[int], transform: Callable | None = None):
        self.paths, self.labels, self.transform = [str(p) for p in paths], torch.as_tensor(labels, dtype=torch.long), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        path = self.paths[index]
        try:
            image = decode_image(read_file(path), mode=ImageReadMode.RGB)
        except RuntimeError as error:  # torchvision's message: "function, source file:line, what is wrong"
            reason = str(error).split(", ", 2)[-1].split(". ")[0]
            raise damaged(path, "image", reason, "the data set's original release") from None
        return (self.transform(image) if self.transform else image), self.labels[index]

    def subset(self, indices: Sequence[int]) -> "ImageFiles":
        return ImageFiles([self.paths[i] for i in indices], self.labels[list(indices)], self.transform)


class ImageArrays(Dataset):
    """Images held in memory as one uint8 array [N, H, W, 3] (CIFAR, STL-10), served as uint8 tensors [3, H, W]."""

    def __init__(self, images: np.ndarray, labels: Sequence[int], transform: Callable | None = None):
        self.images, self.labels, self.transform = images, torch.as_tensor(labels, dtype=torch.long), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = torch.from_numpy(self.images[index]).permute(2, 0, 1)
        return (self.transform(image) if self.transform else image), self.labels[index]

    def subset(self, indices: Sequence[int]) -> "ImageArrays":
        return ImageArrays(self.images[list(indices)], self.labels[list(indices)], self.transform)


def holdout(dataset, size: int) -> tuple[Dataset, Dataset]:
    """(rest, held-out ``size`` examples), drawn by a fixed seed: an ID val split for sets that ship none."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(HOLDOUT_SEED)).tolist()
    return dataset.subset(sorted(order[size:])), dataset.subset(sorted(order[:size]))


def halves(dataset) -> tuple[Dataset, Dataset]:
    """(val, test): an OOD set that ships as one split, halved by a fixed seed so the oracle's val stays apart."""
    test, val = holdout(dataset, len(dataset) // 2)
    return val, test


def on_disk_fingerprint(name: str, root: Path, splits: dict[str, Dataset]) -> str:
    """A cache key for a data set read from ``root``: its name, where it lives and its split sizes (hashing the
    files themselves would read all of ImageNet)."""
    return content_hash(name, str(root), {split: len(dataset) for split, dataset in splits.items()})


def id_val_size(train_size: int) -> int:
    """ID val held out of train where a data set has none: 10%, at least 1 and at most 10,000 images."""
    return max(1, min(train_size // 10, 10_000))
