"""What every benchmark is: named splits of (image, label) data, ID and OOD, and how to batch them."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch.utils.data import Dataset

TRAIN, ID_VAL, ID_TEST = "train", "id_val", "id_test"
GENERATED = "generated"  # the source of a benchmark the project generates (seeded, cached), not read from files


@dataclass
class Benchmark:
    """A transfer task under distribution shift.

    ``splits`` holds ``train``, ``id_val``, ``id_test`` and, per OOD domain D, ``D_val`` (for the OOD-oracle
    ablation only) and ``D_test``. ``fingerprint`` changes whenever the data would, and keys every cache built on it.
    ``class_subsets`` names, for splits that cover only some classes (ImageNet-R, -A), the class indices their
    predictions are restricted to. ``train_transform`` is what training sees of the train split (None: the same
    transform as every other split). ``task`` is ``classification`` or ``regression`` (float labels, one output:
    the theory's toy with the squared loss; its ``classes`` name that output). ``source`` is the folder its files
    were read from, or ``GENERATED``. ``protocol``: the transforms a study file gave its own data, if any (else the
    paper's for its benchmarks, or the backbone's).
    """

    name: str
    classes: tuple[str, ...]
    ood_domains: tuple[str, ...]
    splits: dict[str, Dataset]
    fingerprint: str
    class_subsets: dict[str, tuple[int, ...]] = field(default_factory=dict)
    train_transform: Callable | None = None
    task: str = "classification"
    source: str = GENERATED
    protocol: object | None = None  # its own train and test transforms (a ``study.data.protocol.Protocol``), if any

    def set_transform(self, transform: Callable | None, train: Callable | None = None) -> None:
        """Make every split apply ``transform`` (the evaluation transform: uint8 images in, uint8 images out) to its
        images, and training apply ``train`` (None: ``transform`` too)."""
        for dataset in self.splits.values():
            dataset.transform = transform
        self.train_transform = train

    def training_split(self) -> Dataset:
        """The train split as training reads it: with ``train_transform`` where one is set."""
        if self.train_transform is None:
            return self.splits[TRAIN]
        view = copy.copy(self.splits[TRAIN])
        view.transform = self.train_transform
        return view

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def eval_splits(self) -> list[str]:
        return [name for name in self.splits if name != TRAIN]


class InMemory(Dataset):
    """Examples held in memory with their labels, read and transformed a whole batch at a time
    (``__getitems__``); one item is a batch of one."""

    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        inputs, labels = self.__getitems__([index])
        return inputs[0], labels[0]


class Sentences(InMemory):
    """Sentences held in memory with their labels; ``transform`` (the backbone's tokenizer) turns a batch of them
    into the model's input tensor."""

    def __init__(self, texts: list[str], labels: torch.Tensor, transform: Callable | None = None):
        self.texts, self.labels, self.transform = texts, labels, transform

    def __getitems__(self, indices: list[int]):
        texts = [self.texts[i] for i in indices]
        return (self.transform(texts) if self.transform else texts), self.labels[torch.as_tensor(indices)]


class TensorImages(InMemory):
    """Images held in memory as one tensor [N, C, H, W] (uint8 images, or the toy's float vectors [N, D]); batches
    are sliced and transformed whole."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable | None = None):
        self.images, self.labels, self.transform = images, labels, transform

    def __getitems__(self, indices: list[int]):
        index = torch.as_tensor(indices)
        images = self.images[index]
        return (self.transform(images) if self.transform else images), self.labels[index]
