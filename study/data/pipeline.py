"""The input pipeline: a benchmark's splits as normalised batches on the device, fast enough to keep a GPU fed.

- Datasets yield uint8 images [C, H, W], decoded and transformed (augmented, for training) in DataLoader worker
  processes; in-memory tensor data is sliced a whole batch at a time instead.
- Batches are pinned, copied to the device without blocking, and normalised there (timm's ``PrefetchLoader``
  idea): the workers never touch floats, and a batch crosses the bus as bytes, a quarter of its float size.
- One pool of persistent workers per trial serves every epoch and every split: the main process plans which
  split and which indices come next (``BatchPlan``), the workers only fetch them.
- Each training example carries a seed drawn with its epoch's shuffle, so random augmentation gives the same
  batches with any number of workers, and a resumed trial the same as an uninterrupted one.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from study.data.benchmark import TRAIN, Benchmark
from study.data.files import DataError

FIT = "fit"  # the train split as training sees it (its train transform); ``TRAIN`` is the same images for evaluation
Item = tuple[str, int, int | None]  # (source, index, augmentation seed)


class BatchPlan(Sampler[list[Item]]):
    """The batches the DataLoader's next pass yields; lives in the main process, so changing it between passes
    redirects the persistent workers without restarting them."""

    def __init__(self):
        self.batches: list[list[Item]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class Sources(Dataset):
    """Named datasets behind one index: an item is (source, index, seed), and every batch comes from one source."""

    def __init__(self, datasets: dict[str, Dataset]):
        self.datasets = datasets

    def __len__(self) -> int:
        return sum(len(dataset) for dataset in self.datasets.values())

    def __getitem__(self, item: Item):
        return self.__getitems__([item])

    def __getitems__(self, items: list[Item]):
        dataset = self.datasets[items[0][0]]
        if hasattr(dataset, "__getitems__"):  # in-memory tensors: one slice for the batch, seeded by its first item
            with seeded(items[0][2]):
                return dataset.__getitems__([index for _, index, _ in items])
        pairs = []
        for _, index, seed in items:
            with seeded(seed):
                pairs.append(dataset[index])
        return torch.stack([image for image, _ in pairs]), torch.stack([torch.as_tensor(y) for _, y in pairs])


class seeded:
    """Draw a random transform's numbers from ``seed`` without touching the caller's random state (None: as is)."""

    def __init__(self, seed: int | None):
        self.seed, self.fork = seed, None

    def __enter__(self):
        if self.seed is not None:
            self.fork = torch.random.fork_rng(devices=())
            self.fork.__enter__()
            torch.manual_seed(self.seed)

    def __exit__(self, *exc):
        if self.fork is not None:
            self.fork.__exit__(*exc)


def default_workers(benchmark: Benchmark, cpus: float) -> int:
    """DataLoader workers for a trial with ``cpus`` CPUs: all but the one its main process trains on, for data
    read item by item (files, arrays); none for in-memory tensors, which are sliced a batch at a time faster than
    a worker could hand them over."""
    if all(hasattr(dataset, "__getitems__") for dataset in benchmark.splits.values()):
        return 0
    return max(0, int(cpus) - 1)


def _as_batch(batch):
    return batch


class Pipeline:
    """A trial's batches: ``train`` for one epoch of shuffled training batches, ``split`` for one evaluation split
    in order, both as (images, labels) on ``device``, images normalised by ``normalize`` (uint8 in, float out;
    ``train_normalize`` for training batches where it differs).

    ``num_workers`` DataLoader processes decode and transform (0: in this process). ``shard=(rank, world)``: this
    rank's share of every batch of a data-parallel trial (see ``train``).
    """

    def __init__(self, benchmark: Benchmark, *, device="cpu", normalize: Callable | None = None,
                 train_normalize: Callable | None = None, num_workers: int = 0, shard: tuple[int, int] = (0, 1)):
        self.benchmark, self.device, self.shard = benchmark, torch.device(device), shard
        self.normalize, self.train_normalize = normalize, train_normalize or normalize
        sources = dict(benchmark.splits)
        sources[FIT] = benchmark.training_split()
        self.plan = BatchPlan()
        self.loader = DataLoader(Sources(sources), batch_sampler=self.plan, num_workers=num_workers,
                                 collate_fn=_as_batch, pin_memory=self.device.type == "cuda",
                                 persistent_workers=num_workers > 0, prefetch_factor=4 if num_workers else None)

    def train(self, *, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of ``batch_size`` examples per rank, shuffled by ``seed``, the last partial global batch dropped.

        The k-th batches of all ranks together are exactly the k-th batch of ``batch_size * world`` examples that one
        process would draw, so data-parallel training sees the same batches as a single process.
        """
        rank, world = self.shard
        generator = torch.Generator().manual_seed(seed)
        size = len(self.benchmark.splits[TRAIN])
        order = torch.randperm(size, generator=generator)
        seeds = torch.randint(2**62, (size,), generator=generator)
        kept = size // (batch_size * world) * batch_size * world
        mine = [(FIT, i, s) for i, s in zip(order[:kept][rank::world].tolist(), seeds[:kept][rank::world].tolist())]
        return self._run([mine[k:k + batch_size] for k in range(0, len(mine), batch_size)], self.train_normalize)

    def split(self, name: str, *, batch_size: int = 512) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Split ``name`` in its order (this rank's every ``world``-th example), with its evaluation transform."""
        rank, world = self.shard
        mine = [(name, i, None) for i in range(rank, len(self.benchmark.splits[name]), world)]
        return self._run([mine[k:k + batch_size] for k in range(0, len(mine), batch_size)], self.normalize)

    def _run(self, batches: list[list[Item]], normalize: Callable | None):
        self.plan.batches = batches
        for images, labels in one_line_errors(self.loader):
            yield self.to_device(images, normalize), labels.to(self.device, non_blocking=True)

    def to_device(self, images: torch.Tensor, normalize: Callable | None = None) -> torch.Tensor:
        """Copy a batch to the device (image batches channels-last: faster convolutions on CPU, tensor cores on
        GPU) and normalise it there (by ``normalize``, default the evaluation one)."""
        images = images.to(self.device, non_blocking=True)
        if images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        normalize = normalize or self.normalize
        return normalize(images) if normalize is not None else images


def one_line_errors(batches):
    """``batches``, with a ``DataError`` raised in a DataLoader worker re-raised as its own one line (the DataLoader
    wraps it in the worker's traceback)."""
    try:
        yield from batches
    except DataError as error:
        raise DataError(str(error).strip().splitlines()[-1].split("DataError: ", 1)[-1]) from None
