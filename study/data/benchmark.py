"""What every benchmark is: named splits of (image, label) data, ID and OOD, and how to batch them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch.utils.data import DataLoader, Dataset

TRAIN, ID_VAL, ID_TEST = "train", "id_val", "id_test"


@dataclass(frozen=True)
class Benchmark:
    """A transfer task under distribution shift.

    ``splits`` holds ``train``, ``id_val``, ``id_test`` and, per OOD domain D, ``D_val`` (for the OOD-oracle
    ablation only) and ``D_test``. ``fingerprint`` changes whenever the data would, and keys every cache built on it.
    ``class_subsets`` names, for splits that cover only some classes (ImageNet-R, -A), the class indices their
    predictions are restricted to.
    """

    name: str
    classes: tuple[str, ...]
    ood_domains: tuple[str, ...]
    splits: dict[str, Dataset]
    fingerprint: str
    class_subsets: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def set_transform(self, transform: Callable) -> None:
        """Make every split apply ``transform`` (the backbone's eval transform) to its images."""
        for dataset in self.splits.values():
            dataset.transform = transform

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def eval_splits(self) -> list[str]:
        return [name for name in self.splits if name != TRAIN]

    @property
    def ood_val_splits(self) -> list[str]:
        return [f"{domain}_val" for domain in self.ood_domains]

    @property
    def ood_test_splits(self) -> list[str]:
        return [f"{domain}_test" for domain in self.ood_domains]


class TensorImages(Dataset):
    """Images held in memory as one uint8 tensor [N, C, H, W]; batches are sliced and transformed whole."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable | None = None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        images, labels = self.__getitems__([index])
        return images[0], labels[0]

    def __getitems__(self, indices: list[int]):
        index = torch.as_tensor(indices)
        images = self.images[index]
        return (self.transform(images) if self.transform else images), self.labels[index]

    @staticmethod
    def collate(batch):
        return batch


def loader(dataset: Dataset, batch_size: int, *, shuffle: bool = False, seed: int = 0, drop_last: bool = False,
           num_workers: int = 0, shard: tuple[int, int] = (0, 1)) -> DataLoader:
    """A DataLoader over ``dataset``; in-memory tensor data is fetched a whole batch at a time.

    ``shard=(rank, world)`` gives rank ``rank`` its share of every *global* batch of ``batch_size * world``
    examples: the k-th batches of all ranks together are exactly the k-th batch one process would draw with
    ``batch_size * world``, so data-parallel training sees the same batches as a single process.
    """
    rank, world = shard
    order = (torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)) if shuffle
             else torch.arange(len(dataset)))
    if drop_last:
        global_batch = batch_size * world
        order = order[: len(order) // global_batch * global_batch]
    collate = getattr(dataset, "collate", None)
    return DataLoader(dataset, batch_size=batch_size, sampler=order[rank::world].tolist(), drop_last=drop_last,
                      num_workers=num_workers, collate_fn=collate, persistent_workers=num_workers > 0)
